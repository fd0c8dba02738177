#include "zoobench/scheduler.h"

#include <algorithm>
#include <numeric>
#include <queue>

#include "zoobench/error.h"

namespace zoobench {

Policy policy_from(const std::string& name) {
  if (name == "dynamic") return Policy::Dynamic;
  if (name == "static") return Policy::RoundRobin;
  throw UsageError("unknown schedule '" + name + "' (known: dynamic, static)");
}

Dispatcher::Dispatcher(const Plan& plan, std::vector<char> done, int workers, Policy policy)
    : plan_(plan), policy_(policy), done_(std::move(done)), taken_(done_) {
  if (done_.size() != plan.units.size()) throw Error("dispatcher: done flags do not match the plan");
  done_count_ = static_cast<size_t>(std::count(done_.begin(), done_.end(), 1));
  todo_at_start_ = done_.size() - done_count_;
  order_.resize(done_.size());
  std::iota(order_.begin(), order_.end(), size_t{0});
  // Largest first; plan order breaks ties, so every run hands units out alike.
  std::stable_sort(order_.begin(), order_.end(),
                   [&](size_t a, size_t b) { return plan.units[a].cost > plan.units[b].cost; });
  lists_.resize(static_cast<size_t>(std::max(workers, 1)));
  cursor_.assign(lists_.size(), 0);
  size_t k = 0;
  for (size_t u = 0; u < done_.size(); ++u)
    if (!done_[u]) lists_[k++ % lists_.size()].push_back(u);
}

bool Dispatcher::ready(size_t u) const {
  for (int d : plan_.units[u].deps)
    if (!done_[static_cast<size_t>(d)]) return false;
  return true;
}

int64_t Dispatcher::next(int worker) {
  if (policy_ == Policy::Dynamic) {
    bool pending = false;
    for (size_t u : order_) {
      if (taken_[u]) continue;
      pending = true;
      if (ready(u)) {
        taken_[u] = 1;
        return static_cast<int64_t>(u);
      }
    }
    return pending ? kWait : kFinished;
  }
  auto& list = lists_.at(static_cast<size_t>(worker));
  size_t& pos = cursor_.at(static_cast<size_t>(worker));
  if (pos == list.size()) return kFinished;
  size_t u = list[pos];
  if (!ready(u)) return kWait;
  ++pos;
  taken_[u] = 1;
  return static_cast<int64_t>(u);
}

void Dispatcher::complete(int64_t unit) {
  auto u = static_cast<size_t>(unit);
  if (u >= done_.size() || done_[u]) return;
  done_[u] = 1;
  ++done_count_;
}

Simulation simulate(const Plan& plan, const std::vector<double>& seconds, int workers, Policy policy) {
  if (seconds.size() != plan.units.size()) throw Error("simulate: one cost per unit expected");
  Dispatcher d(plan, std::vector<char>(plan.units.size(), 0), workers, policy);
  Simulation s;
  s.busy.assign(static_cast<size_t>(workers), 0.0);
  // Events: (end time, worker, unit); workers without a unit wait for the next event.
  using Event = std::tuple<double, int, int64_t>;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> running;
  std::vector<int> idle(static_cast<size_t>(workers));
  std::iota(idle.begin(), idle.end(), 0);
  double now = 0;
  while (true) {
    std::vector<int> still_idle;
    for (int w : idle) {
      int64_t u = d.next(w);
      if (u >= 0) {
        double dt = seconds[static_cast<size_t>(u)];
        s.busy[static_cast<size_t>(w)] += dt;
        running.emplace(now + dt, w, u);
      } else if (u == Dispatcher::kWait) {
        still_idle.push_back(w);
      }
    }
    idle = still_idle;
    if (running.empty()) break;
    auto [t, w, u] = running.top();
    running.pop();
    now = t;
    d.complete(u);
    idle.push_back(w);
    while (!running.empty() && std::get<0>(running.top()) == now) {  // everything that ends now
      auto [t2, w2, u2] = running.top();
      running.pop();
      d.complete(u2);
      idle.push_back(w2);
    }
  }
  if (!d.all_done()) throw Error("simulate: the plan's dependencies cannot all be met");
  s.makespan = now;
  double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
  s.utilisation = now > 0 ? total / (workers * now) : 1.0;
  s.lower_bound = std::max(total / workers, longest_chain(plan, seconds));
  return s;
}

double longest_chain(const Plan& plan, const std::vector<double>& seconds) {
  // Units are planned after their dependencies, so one pass in plan order suffices.
  std::vector<double> chain(plan.units.size(), 0.0);
  double longest = 0;
  for (size_t u = 0; u < plan.units.size(); ++u) {
    double before = 0;
    for (int dep : plan.units[u].deps) before = std::max(before, chain[static_cast<size_t>(dep)]);
    chain[u] = before + seconds[u];
    longest = std::max(longest, chain[u]);
  }
  return longest;
}

}  // namespace zoobench
