#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang only; not part of the CMake build) into build-fuzz/.
# Usage: tests/fuzz/build.sh            (from the repository root or anywhere)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
cc=${CC_FUZZ:-clang}
mkdir -p "$out"
flags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/shared")
lib=("$root"/shared/st_lastfm.c "$root"/shared/st_listen.c "$root"/shared/st_time.c
     "$root"/shared/st_buf.c "$root"/shared/st_err.c "$root"/shared/st_log.c)
for h in fuzz_tsv fuzz_listen_json; do
    "$cc" "${flags[@]}" "$root/tests/fuzz/$h.c" "${lib[@]}" -ljansson -o "$out/$h"
    echo "built $out/$h"
done
