-- Prelude: fills the last `{}` of a key template (built in Rust, store::keys::SLOT) with
-- `name`, for keys a script discovers while it runs.
local function key(template, name)
  local at, from = nil, 1
  while true do
    local i = string.find(template, '{}', from, true)
    if not i then break end
    at, from = i, i + 1
  end
  return string.sub(template, 1, at - 1) .. name .. string.sub(template, at + 2)
end
