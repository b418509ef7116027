"""Heap allocations per delivered message, from heaptrack_print's "most calls" listing.

    python3 bench/alloc_report.py ALLOCATORS_TXT BENCH_JSON > alloc-per-message.txt

Each call stack is charged to its first frame of ours (`chat::…`), and again to that frame
with the first frame below it outside the allocator. Used by `PROFILE=alloc bench/profile.sh`.
"""
import collections, json, re, sys
lines = open(sys.argv[1]).read().split("\n")
delivered = json.load(open(sys.argv[2]))["messages"]["received"] or 1
total = next((int(m.group(1)) for l in lines
              if (m := re.match(r"calls to allocation functions: (\d+)", l))), 0)
def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    for a, b in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"), ("$u7d$", "}"),
                 ("$RF$", "&"), ("$C$", ","), ("..", "::")]:
        frame = frame.replace(a, b)
    return frame[:110]
ours, inner = collections.Counter(), collections.Counter()
i = 0
while i < len(lines):
    m = re.match(r"^(\d+) calls with .* from:", lines[i])
    if not m:
        i += 1
        continue
    n, frames, i = int(m.group(1)), [], i + 1
    while i < len(lines) and lines[i].startswith("    "):
        if not lines[i].strip().startswith("in "):
            frames.append(short(lines[i].strip()))
        i += 1
    mine = [f for f in frames if "chat::" in f]
    key = mine[0] if mine else "(no frame of ours: the libraries' own tasks)"
    callee = [f for f in frames if not re.search(
        r"raw_vec|alloc::|finish_grow|do_reserve|__rust|malloc|realloc|Box<|Vec<|String|bytes::", f)]
    ours[key] += n
    inner[(key, callee[0] if callee else "?")] += n
print(f"delivered messages: {delivered}; allocation calls: {total} "
      f"({total / delivered:.1f} per message, handshakes and log-ins included)")
print("\nper message, by the first frame of ours:")
for k, v in ours.most_common(30):
    print(f"{v / delivered:7.2f}  {k}")
print("\nper message, by that frame and the first frame below it outside the allocator:")
for (k, c), v in inner.most_common(40):
    print(f"{v / delivered:7.2f}  {k[:70]}  <-  {c}")
