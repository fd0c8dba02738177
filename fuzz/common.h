// Shared by the fuzz targets: the input as a file (the readers take paths),
// and the contract every target checks. A reader may reject its input only
// with a zoobench::Error (one clear line at the CLI); any other exception
// escaping it, or a crash, leak or undefined behaviour caught by the
// sanitizers, is a finding.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "zoobench/error.h"

namespace zoobench::fuzz {

// An in-memory file (memfd), reachable by path as /proc/self/fd/N.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size, const char* name = "zb-fuzz") : fd_(::memfd_create(name, 0)) {
    if (fd_ < 0) std::abort();
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// A file HDF5 can create by name (it will not create through /proc/self/fd):
// on /dev/shm when there is one, removed at the end of the input.
class TempPath {
 public:
  explicit TempPath(const char* suffix) {
    const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(dir) + "/zb-fuzz-" + std::to_string(::getpid()) + suffix;
  }
  ~TempPath() { ::unlink(path_.c_str()); }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const Error&) {
    // The documented way to refuse bad input.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: an exception that is not a zoobench::Error escaped: %s\n", e.what());
    std::abort();
  }
}

}  // namespace zoobench::fuzz
