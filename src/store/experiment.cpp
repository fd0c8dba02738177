// The experiment folder: lock, identity, shard files (see store.h).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/owner.h"
#include "zoobench/store.h"

namespace zoobench::store {
namespace {

void fsync_path(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw IoError("cannot open '" + p.string() + "' to sync it: " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError("cannot sync '" + p.string() + "' to disk: " + std::strerror(errno));
}

// Test hooks that make a crash inside a shard write findable: the k-th
// shard this process writes kills the process (SIGKILL) or pauses it for
// the given seconds while the file is open and half-written.
void fault_point() {
  static int writes = 0;
  ++writes;
  if (const char* k = std::getenv("ZOOBENCH_FAULT_KILL_IN_SHARD_WRITE"); k && std::atoi(k) == writes) ::raise(SIGKILL);
  if (const char* s = std::getenv("ZOOBENCH_FAULT_PAUSE_IN_SHARD_WRITE"); s && *s)
    std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(s)));
}

// "a.b[2].c" -> scalar text, for every leaf of a YAML document.
void flatten(const YAML::Node& n, const std::string& path, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) flatten(kv.second, path.empty() ? kv.first.as<std::string>() : path + "." + kv.first.as<std::string>(), out);
  } else if (n.IsSequence()) {
    bool scalars = true;
    for (const auto& x : n) scalars = scalars && x.IsScalar();
    if (scalars) {
      std::string s = "[";
      for (size_t i = 0; i < n.size(); ++i) s += (i ? ", " : "") + n[i].as<std::string>();
      out[path] = s + "]";
    } else {
      for (size_t i = 0; i < n.size(); ++i) flatten(n[i], path + "[" + std::to_string(i) + "]", out);
    }
  } else if (n.IsScalar()) {
    out[path] = n.as<std::string>();
  } else {
    out[path] = "";
  }
}

// Keys that change how the grid is computed, never what: a resumed run may change them.
bool execution_key(const std::string& k) {
  return k == "threads" || k.rfind("execution", 0) == 0 || k == "extract.lgc_memory_mb";
}

}  // namespace

// ---- Lock ---------------------------------------------------------------------
Lock::Lock(fs::path file, std::string run_id) : file_(std::move(file)) {
  const Owner me = Owner::self();
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      std::string text = me.to_text() + "run_id=" + run_id + "\n";
      bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) throw IoError("cannot write the lock '" + file_.string() + "': " + std::strerror(errno));
      owner_ = true;
      return;
    }
    if (errno != EEXIST) throw IoError("cannot create the lock '" + file_.string() + "': " + std::strerror(errno));
    struct stat seen {};
    if (::stat(file_.c_str(), &seen) != 0) continue;  // removed meanwhile: try again
    auto kv = read_keys(file_);
    if (!run_id.empty() && kv["run_id"] == run_id) return;  // a cooperating writer of the same run
    const Owner holder = Owner::from_keys(kv);
    if (owner_gone(holder, me)) {
      // Stale: its owner died (kill -9, node failure, a requeued job).
      remove_if_unchanged(file_, seen);
      continue;
    }
    throw Error("experiment '" + file_.parent_path().filename().string() + "' is in use by another run (" +
                holder.describe() + "; lock " + file_.string() +
                "): wait for it to end, or remove the lock if that run is gone");
  }
  throw Error("cannot take the lock '" + file_.string() + "': it keeps reappearing");
}

Lock::~Lock() {
  if (!owner_) return;
  std::error_code ec;
  fs::remove(file_, ec);
}

// ---- experiment folder ---------------------------------------------------------
fs::path move_aside(const fs::path& exp_dir) {
  std::string stamp = utc_now();  // 2026-11-27T20:41:53Z -> 20261127T204153Z
  stamp.erase(std::remove_if(stamp.begin(), stamp.end(), [](char c) { return c == '-' || c == ':'; }), stamp.end());
  fs::path to = exp_dir;
  to += ".old-" + stamp;
  for (int k = 2; fs::exists(to); ++k) (to = exp_dir) += ".old-" + stamp + "-" + std::to_string(k);
  std::error_code ec;
  fs::rename(exp_dir, to, ec);
  if (ec) throw IoError("cannot move '" + exp_dir.string() + "' aside to '" + to.string() + "': " + ec.message());
  return to;
}

void check_identity(const fs::path& exp_dir, const std::string& identity_yaml) {
  const fs::path file = exp_dir / "experiment.yaml";
  if (!fs::exists(file)) {
    AtomicPath out(file);
    std::ofstream(out.tmp()) << identity_yaml;
    fsync_path(out.tmp(), false);
    out.commit();
    return;
  }
  std::map<std::string, std::string> was, now;
  try {
    flatten(YAML::LoadFile(file.string()), "", was);
  } catch (const YAML::Exception& e) {
    throw DataError(file.string() + ": unreadable experiment identity: " + e.msg);
  }
  flatten(YAML::Load(identity_yaml), "", now);
  std::vector<std::string> differ;
  for (const auto& [k, v] : now)
    if (!execution_key(k) && (!was.count(k) || was[k] != v)) differ.push_back(k);
  for (const auto& [k, v] : was)
    if (!execution_key(k) && !now.count(k)) differ.push_back(k);
  if (differ.empty()) return;
  std::string list;
  for (size_t i = 0; i < differ.size() && i < 8; ++i) {
    const auto& k = differ[i];
    list += (i ? "; " : "") + k + " (was " + (was.count(k) ? was[k] : "unset") + ", now " +
            (now.count(k) ? now[k] : "unset") + ")";
  }
  if (differ.size() > 8) list += "; and " + std::to_string(differ.size() - 8) + " more";
  throw ConfigError("experiment '" + exp_dir.filename().string() + "' was started with a different config (" +
                    file.string() + "): " + list + ". Resume with the same config, or start over with --fresh");
}

fs::path shard_path(const fs::path& exp_dir, const Unit& u) {
  // The kind is the folder; the rest of the id names the file.
  const std::string rest = u.id.substr(u.id.find('/') + 1);
  return exp_dir / "shards" / unit_kind_name(u.kind) / (encode_id(rest) + ".h5");
}

std::vector<char> done_units(const fs::path& exp_dir, const Plan& plan) {
  std::vector<char> done(plan.units.size(), 0);
  for (size_t i = 0; i < plan.units.size(); ++i) done[i] = fs::exists(shard_path(exp_dir, plan.units[i])) ? 1 : 0;
  return done;
}

size_t live_claims(const fs::path& exp_dir) {
  size_t n = 0;
  std::error_code ec;
  if (!fs::is_directory(exp_dir / "claims")) return 0;
  const Owner me = Owner::self();
  for (const auto& e : fs::directory_iterator(exp_dir / "claims", ec)) {
    auto kv = read_keys(e.path());
    if (!kv.empty() && !owner_gone(Owner::from_keys(kv), me)) ++n;
  }
  return n;
}

size_t remove_stale_temporaries(const fs::path& exp_dir) {
  const std::string marker = ".tmp." + hostname() + ".";
  size_t removed = 0;
  std::error_code ec;
  if (!fs::exists(exp_dir / "shards")) return 0;
  for (const auto& e : fs::recursive_directory_iterator(exp_dir / "shards", ec)) {
    const std::string name = e.path().filename().string();
    auto at = name.rfind(marker);
    if (at == std::string::npos) continue;
    if (process_alive(std::atol(name.c_str() + at + marker.size()))) continue;
    if (fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

std::vector<std::string> set_aside_broken_shards(const fs::path& exp_dir, const Plan& plan, std::vector<char>& done) {
  std::vector<std::string> moved;
  for (size_t i = 0; i < plan.units.size(); ++i) {
    if (!done[i]) continue;
    const fs::path shard = shard_path(exp_dir, plan.units[i]);
    std::string why;
    try {
      h5::File f = h5::File::open(shard);
      if (!f.has_attr("seconds")) why = "it was never committed (no 'seconds' attribute)";
      else if (!f.has_attr("unit") || f.attr_string("unit") != plan.units[i].id)
        why = "it does not hold unit '" + plan.units[i].id + "'";
    } catch (const Error& e) {
      why = e.what();
    }
    if (why.empty()) continue;
    // A commit renames a complete file into place, so this one was damaged
    // afterwards (a truncated copy, a failing disk): keep it for a look, run the unit again.
    fs::path aside = exp_dir / "broken-shards" / shard.parent_path().filename() / shard.filename();
    std::error_code ec;
    fs::create_directories(aside.parent_path(), ec);
    if (ec) throw IoError("cannot create '" + aside.parent_path().string() + "': " + ec.message());
    for (int k = 1; fs::exists(aside); ++k)
      aside = aside.parent_path() / (shard.filename().string() + "." + std::to_string(k));
    fs::rename(shard, aside, ec);
    // Another worker sharing the folder may have moved it first.
    if (ec && fs::exists(shard)) throw IoError("cannot move '" + shard.string() + "' to '" + aside.string() + "': " + ec.message());
    done[i] = 0;
    moved.push_back("shard '" + shard.string() + "' is unreadable (" + why + "): moved to '" + aside.string() +
                    "'; its unit runs again");
  }
  return moved;
}

std::string identity_digest(const fs::path& exp_dir) {
  const fs::path file = exp_dir / "experiment.yaml";
  if (!fs::exists(file)) return "";
  uint64_t h = 1469598103934665603ULL;  // FNV-1a: a label for equality, not a security measure
  for (unsigned char c : read_file(file)) h = (h ^ c) * 1099511628211ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// ---- shards --------------------------------------------------------------------
ShardWriter::ShardWriter(const fs::path& exp_dir, const Unit& u, const Provenance& who, double start_epoch_s)
    : final_(shard_path(exp_dir, u)) {
  std::error_code ec;
  fs::create_directories(final_.parent_path(), ec);
  if (ec) throw IoError("cannot create '" + final_.parent_path().string() + "': " + ec.message());
  tmp_ = final_;
  tmp_ += ".tmp." + hostname() + "." + std::to_string(::getpid());
  file_ = std::make_unique<h5::File>(h5::File::create(tmp_));
  file_->set_attr("schema_version", kShardSchemaVersion);
  file_->set_attr("unit", u.id);
  file_->set_attr("kind", unit_kind_name(u.kind));
  file_->set_attr("run_id", who.run_id);
  file_->set_attr("started_utc", who.started_utc);
  file_->set_attr("host", who.host);
  file_->set_attr("rank", static_cast<int64_t>(who.rank));
  file_->set_attr("ranks", static_cast<int64_t>(who.ranks));
  file_->set_attr("start", start_epoch_s);
  const std::string identity = identity_digest(exp_dir);
  if (!identity.empty()) file_->set_attr("identity", identity);
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  file_.reset();
  std::error_code ec;
  fs::remove(tmp_, ec);
}

void ShardWriter::commit(double seconds) {
  file_->set_attr("seconds", seconds);
  file_->flush();
  fault_point();
  file_->close();
  fsync_path(tmp_, false);
  std::error_code ec;
  fs::rename(tmp_, final_, ec);
  if (ec) throw IoError("cannot rename '" + tmp_.string() + "' to '" + final_.string() + "': " + ec.message());
  committed_ = true;
  fsync_path(final_.parent_path(), true);
}

void write_context(h5::File& f, const RunContext& ctx) {
  f.set_attr("versions", ctx.versions);
  f.set_attr("manifest", ctx.manifest);
  f.set_attr("threads", static_cast<int64_t>(ctx.threads));
  f.set_attr("config_source", ctx.config_source);
}

}  // namespace zoobench::store
