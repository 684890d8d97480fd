#!/usr/bin/env bash
# Fuzzes the kernel-log scanner with libFuzzer for a bounded time and prints the execution count.
# usage: scripts/fuzz-scan.sh [seconds] [max_len]   (defaults 60 and 4096)
# Inputs up to 4 KiB run at hundreds of executions a second; a max_len above 65536 also
# reaches the scanner's long-line cut (StreamingCrashScanner.maxLineBytes) at tens a second.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
max_len="${2:-4096}"
out=.build/fuzz
mkdir -p "$out/corpus"
# Seed with the fixtures and a few corpus logs when present.
cp Tests/KernelLogTests/Fixtures/*.log "$out/corpus/" 2>/dev/null || true
if [ -d ../shared/corpus/syzkaller-linux ]; then
  for f in $(ls ../shared/corpus/syzkaller-linux | sed -n 1,40p); do
    head -c 65536 "../shared/corpus/syzkaller-linux/$f" > "$out/corpus/syz-$f"
  done
fi
# KernelLog's C helper (the SIMD needle filter) under the same sanitizer.
clang -O2 -fsanitize=address,fuzzer-no-link -I Sources/CKernelLog/include \
  -c Sources/CKernelLog/teddy.c -o "$out/teddy.o" 2>"$out/build.log" || { sed -n 1,20p "$out/build.log"; exit 1; }
swiftc -sanitize=fuzzer,address -parse-as-library -O -I Sources/CKernelLog/include \
  Sources/KernelLog/*.swift Sources/KernelLog/Readers/*.swift Fuzz/ScanFuzz.swift "$out/teddy.o" \
  -module-name KernelLogFuzz -o "$out/scan-fuzz" 2>>"$out/build.log" || { grep -E "error" "$out/build.log" | sed -n 1,20p; exit 1; }
"$out/scan-fuzz" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=4096 \
  -print_final_stats=1 "$out/corpus" 2>&1 | tee "$out/fuzz.log" | grep -E "^#[0-9]+ +(DONE|pulse)|ERROR|SUMMARY|crash-" || true
execs=$(grep -E "stat::number_of_executed_units" "$out/fuzz.log" | awk '{print $2}')
echo "fuzz: ${execs:-0} executions in ${seconds}s"
if grep -qE "ERROR: (libFuzzer|AddressSanitizer)" "$out/fuzz.log"; then
  echo "fuzz: FAILED (see $out/fuzz.log)"
  exit 1
fi
