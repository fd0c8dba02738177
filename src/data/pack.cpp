#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include "zoobench/error.h"
#include "zoobench/pack.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {
bool up_to_date(const fs::path& p) {
  if (!fs::exists(p)) return false;
  try {
    read_packed_info(p);
    return true;
  } catch (const Error&) {
    return false;  // older schema or damaged: repack
  }
}
}  // namespace

std::vector<PackResult> pack_domains(const std::vector<std::string>& domains, const fs::path& data_dir,
                                     const PackOptions& opt, bool force, int jobs, int rank, int world_size) {
  struct Work {
    const Source* source;
    std::vector<std::string> wanted;
  };
  std::vector<Work> work;
  std::vector<PackResult> results;
  size_t k = 0;
  for (const auto& src : sources()) {
    std::vector<std::string> wanted;
    for (const auto& d : src.domains)
      if (std::find(domains.begin(), domains.end(), d) != domains.end()) wanted.push_back(d);
    if (wanted.empty()) continue;
    if (static_cast<int>(k++ % static_cast<size_t>(world_size)) != rank) continue;
    std::vector<std::string> todo;
    for (const auto& d : wanted) {
      fs::path p = packed_path(data_dir, d);
      if (!force && up_to_date(p)) results.push_back({d, p, false, static_cast<size_t>(read_packed_info(p).images), 0});
      else todo.push_back(d);
    }
    if (!todo.empty()) work.push_back({&src, todo});
  }

  std::mutex mu;
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(work.size());
  auto worker = [&] {
    for (size_t i; (i = next++) < work.size();) {
      try {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<ImageSet> sets = work[i].source->pack(opt, work[i].wanted);
        std::vector<PackResult> local;
        for (const auto& set : sets) {
          fs::path p = packed_path(data_dir, set.name);
          write_packed(set, p);
          local.push_back({set.name, p, true, set.size(), 0});
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu);
        for (auto& r : local) r.seconds = s, results.push_back(std::move(r));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  int n = std::max(1, std::min<int>(jobs, static_cast<int>(work.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  std::sort(results.begin(), results.end(), [](const PackResult& a, const PackResult& b) { return a.domain < b.domain; });
  return results;
}

}  // namespace zoobench
