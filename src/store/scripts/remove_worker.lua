-- After worker.lua. Drops this instance and all its memberships (drain).
reap(ME)
return 1
