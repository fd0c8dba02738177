// Output files appear complete or not at all: write to a temporary name in
// the same directory, rename on commit(), delete if never committed.
#pragma once
#include <filesystem>
#include <string>

namespace zoobench {

class AtomicPath {
 public:
  explicit AtomicPath(std::filesystem::path final_path);
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  // Where to write now.
  const std::filesystem::path& tmp() const { return tmp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // Rename tmp() onto the final path (atomic within one file system).
  void commit();

 private:
  std::filesystem::path final_, tmp_;
  bool committed_ = false;
};

// Reads a whole file; IoError naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

}  // namespace zoobench

namespace zoobench {
// "2026-11-26T07:13:22Z"
std::string utc_now();
}  // namespace zoobench
