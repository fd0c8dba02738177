# Sourced by the side-by-side scripts (the same BLAS kernels on both sides)
# and by tools/test (one choice for hundreds of short commands).
# When OpenBLAS takes this CPU for an older one (0.3.21 runs Prescott's SSE3
# kernels on a Sapphire Rapids Xeon, 5.9x slower here), zoobench and the
# bench binaries choose the CPU's own kernels themselves (`zoobench version`
# says so); numpy and PyTorch in Python would not, so they get the same
# OPENBLAS_CORETYPE here.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  _zb_core=$("$(dirname "${BASH_SOURCE[0]}")/../build/zoobench" version 2>/dev/null | sed -n 's/^ *kernels: \([A-Za-z0-9]*\), set by zoobench.*/\1/p') || _zb_core=
  if [ -n "$_zb_core" ]; then
    export OPENBLAS_CORETYPE=$_zb_core
    echo "# OPENBLAS_CORETYPE=$_zb_core, zoobench's choice, for everything that follows (OpenBLAS took this CPU for a Prescott)" >&2
  fi
  unset _zb_core
fi
