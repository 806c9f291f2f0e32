#!/usr/bin/env bash
# Each public header compiles alone, with only the C++17 standard library and medinfer's own
# include directories on the path (no LibTorch, OpenCV, DCMTK or fmt include dirs).
set -euo pipefail
cxx=$1; src_include=$2; gen_include=$3
fails=0
for h in "$src_include"/medinfer/*.hpp; do
  if ! "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I"$src_include" -I"$gen_include" -x c++ \
      -include "$h" /dev/null 2>err.txt; then
    echo "FAIL: $h does not compile alone:"; cat err.txt; fails=$((fails + 1))
  else
    echo "ok: $(basename "$h")"
  fi
done
rm -f err.txt
[ "$fails" -eq 0 ]
