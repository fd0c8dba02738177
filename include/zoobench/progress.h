// One progress line on stderr: stage, items done/total, elapsed, ETA.
#pragma once
#include <chrono>
#include <string>

namespace zoobench {

class Progress {
 public:
  Progress(std::string stage, size_t total, bool quiet);
  void step(const std::string& what = "");  // one item done
  void finish();
  double elapsed() const;

 private:
  std::string stage_;
  size_t total_, done_ = 0;
  bool quiet_;
  std::chrono::steady_clock::time_point t0_;
};

std::string format_seconds(double s);

}  // namespace zoobench
