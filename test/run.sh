#!/bin/sh
# Runs each test binary given (under $VALGRIND when set), echoes its output, and ends with
# the totals over all of them: "N passed, M failed". Exit status 1 if anything failed.
passed=0; failed=0; status=0
for t in "$@"; do
  out=$($VALGRIND "$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/')
  f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/')
  if [ -z "$line" ]; then p=0; f=1; echo "$t: no result line (exit $rc)"; fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$t: exit status $rc"; fi
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -ne 0 ] && status=1
done
echo "$passed passed, $failed failed"
exit $status
