// What autograd recorded: for tests that check which kernels a pass ran.
#pragma once
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

namespace zbtest {

// Whether the autograd graph behind `out` has a node whose name contains `part`.
inline bool graph_has(const at::Tensor& out, const std::string& part) {
  std::vector<torch::autograd::Node*> todo{out.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    torch::autograd::Node* f = todo.back();
    todo.pop_back();
    if (!f || !seen.insert(f).second) continue;
    if (f->name().find(part) != std::string::npos) return true;
    for (const auto& e : f->next_edges()) todo.push_back(e.function.get());
  }
  return false;
}

}  // namespace zbtest
