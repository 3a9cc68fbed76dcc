#!/usr/bin/env bash
# Proves the portable build's promise: AVX instructions appear only in the per-ISA kernel
# namespaces (<layer>::cpu::avx2::, <layer>::cpu::avx512::), and AVX-512 ones only in the
# latter, so a CPU without AVX2 reaches the one-line refusal and never an illegal
# instruction. Also proves both levels were really built (each holds wide vector code).
#
#   check_isa_containment.sh BINARY...   (the libraries with CPU kernels, the tessera executable)
set -euo pipefail
(($#)) || { echo "usage: $0 BINARY..." >&2; exit 2; }
command -v objdump >/dev/null || { echo "check_isa_containment: objdump (binutils) is missing" >&2; exit 2; }

status=0
for binary in "$@"; do
  objdump -d --no-show-raw-insn -C "$binary" | awk -v binary="$binary" '
    /^[0-9a-f]+ <.*>:$/ { fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn); next }
    /^ *[0-9a-f]+:\t/ {
      insn = $0; sub(/^ *[0-9a-f]+:\t/, "", insn)
      wide512 = insn ~ /%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])|\{1to|\{%k/
      avx = wide512 || insn ~ /%ymm/ || insn ~ /^v[a-z0-9]+ .*%xmm/
      if (!avx) next
      in512 = index(fn, "::cpu::avx512::") > 0
      in2 = index(fn, "::cpu::avx2::") > 0
      if (wide512 && in512) seen512 = 1
      if (insn ~ /%ymm/ && in2) seen2 = 1
      if ((wide512 && !in512) || (!in512 && !in2)) {
        if (!(fn in bad)) { bad[fn] = insn; nbad++ }
      }
    }
    END {
      for (f in bad) printf "check_isa_containment: %s: %s uses %s outside its ISA namespace\n", binary, f, bad[f]
      if (binary ~ /libtessera/ && !seen2) { print "check_isa_containment: " binary ": no AVX2 code in ::cpu::avx2::"; nbad++ }
      if (binary ~ /libtessera/ && !seen512) { print "check_isa_containment: " binary ": no AVX-512 code in ::cpu::avx512::"; nbad++ }
      exit nbad > 0
    }' || status=1
done
((status == 0)) && echo "check_isa_containment: AVX code only in the per-ISA kernels of $*"
exit $status
