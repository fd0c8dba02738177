// The seed paper's kernel-label correlation, shared by LFC (features) and
// LGC (gradient sketches): Pearson correlation between the entries of
// Theta = X X^T and K_Y (+1 same label, -1 otherwise), one global mean,
// without forming any N x N matrix.
#pragma once
#include <ATen/core/Tensor.h>

namespace zoobench::detail {
double kernel_label_correlation(const at::Tensor& x, const at::Tensor& labels, int64_t classes);
}
