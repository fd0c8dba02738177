#include "zoobench/io.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "zoobench/error.h"

namespace zoobench {
namespace fs = std::filesystem;

AtomicPath::AtomicPath(fs::path final_path) : final_(std::move(final_path)) {
  static std::atomic<unsigned> counter{0};
  if (final_.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(final_.parent_path(), ec);
    if (ec) throw IoError("cannot create directory '" + final_.parent_path().string() + "': " + ec.message());
  }
  // The pid and a counter keep concurrent writers (ranks, threads) apart.
  tmp_ = final_;
  tmp_ += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

AtomicPath::~AtomicPath() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicPath::commit() {
  std::error_code ec;
  fs::rename(tmp_, final_, ec);
  if (ec) throw IoError("cannot rename '" + tmp_.string() + "' to '" + final_.string() + "': " + ec.message());
  committed_ = true;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path.string() + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("cannot read '" + path.string() + "'");
  return ss.str();
}

}  // namespace zoobench

#include <ctime>
namespace zoobench {
std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
}  // namespace zoobench
