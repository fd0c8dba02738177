// A full-covariance Gaussian mixture fitted by EM from a k-means start, as
// scikit-learn's GaussianMixture does it (N-LEEP's density model).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace zoobench::detail {

struct GmmOptions {
  int64_t components = 1;
  int max_iter = 100;
  double tol = 1e-3;        // on the change of the mean log-likelihood
  double reg_covar = 1e-6;  // added to every covariance's diagonal
  uint64_t seed = 0;        // k-means++ seeding
};

// Lloyd's k-means from greedy k-means++ seeds; returns each row's cluster.
at::Tensor kmeans(const at::Tensor& x, int64_t k, uint64_t seed, int max_iter = 300);
// The posterior over components of every row (N x K) after fitting to x.
at::Tensor gmm_posteriors(const at::Tensor& x, const GmmOptions& opt);

}  // namespace zoobench::detail
