#include "zoobench/progress.h"

#include <unistd.h>

#include <cstdio>

namespace zoobench {

std::string format_seconds(double s) {
  char b[32];
  if (s < 60) std::snprintf(b, sizeof b, "%.1fs", s);
  else std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return b;
}

Progress::Progress(std::string stage, size_t total, bool quiet)
    : stage_(std::move(stage)), total_(total), quiet_(quiet), t0_(std::chrono::steady_clock::now()) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::step(const std::string& what) {
  ++done_;
  if (quiet_) return;
  double e = elapsed();
  double eta = done_ ? e / done_ * (total_ - done_) : 0;
  // A terminal gets one line rewritten in place; a log gets one line per step.
  bool tty = isatty(2);
  std::fprintf(stderr, "%s[%s] %zu/%zu  elapsed %s  ETA %s  %s%s", tty ? "\r\033[K" : "", stage_.c_str(), done_, total_,
               format_seconds(e).c_str(), format_seconds(eta).c_str(), what.c_str(), tty ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (!quiet_ && isatty(2)) std::fprintf(stderr, "\n");
}

}  // namespace zoobench
