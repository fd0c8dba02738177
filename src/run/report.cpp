// The summary a run prints: Spearman's rho of every selector on every task,
// the best model and its gain over the generic one, read from results.h5.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "zoobench/h5.h"
#include "zoobench/run.h"

namespace zoobench {

void print_summary(const std::filesystem::path& results_h5) {
  h5::File f = h5::File::open(results_h5);
  h5::Group rho = f.open_group("tables/spearman"), gain = f.open_group("tables/gain");
  auto tasks = rho.dataset("task").read_strings(), sels = rho.dataset("selector").read_strings();
  auto values = rho.dataset("rho").read<double>();
  auto models = rho.dataset("models").read<int64_t>();
  std::vector<std::string> task_order, sel_order;
  for (const auto& t : tasks)
    if (std::find(task_order.begin(), task_order.end(), t) == task_order.end()) task_order.push_back(t);
  for (const auto& s : sels)
    if (std::find(sel_order.begin(), sel_order.end(), s) == sel_order.end()) sel_order.push_back(s);
  // Best model per task from the ground truth.
  h5::Group gt = f.open_group("ground_truth");
  auto gt_task = gt.dataset("task").read_strings(), gt_model = gt.dataset("model").read_strings();
  auto gt_acc = gt.dataset("test_acc").read<double>();
  std::map<std::string, std::pair<std::string, double>> best;
  for (size_t i = 0; i < gt_task.size(); ++i)
    if (!best.count(gt_task[i]) || gt_acc[i] > best[gt_task[i]].second) best[gt_task[i]] = {gt_model[i], gt_acc[i]};
  auto g_task = gain.dataset("task").read_strings();
  auto g_gain = gain.dataset("gain").read<double>();
  std::map<std::string, double> gain_of;
  for (size_t i = 0; i < g_task.size(); ++i) gain_of[g_task[i]] = g_gain[i];

  char line[512];
  std::string header = "task                    ";
  for (const auto& s : sel_order) {  // right-aligned over the numbers, cut to 8 characters
    std::snprintf(line, sizeof line, " %8s", s.substr(0, 8).c_str());
    header += line;
  }
  header += "  best model (test acc)          gain vs generic";
  std::cout << "\nSpearman rho of each score against the fine-tuned test accuracy, over "
            << (models.empty() ? 0 : models[0]) << " zoo entries:\n" << header << "\n";
  for (const auto& t : task_order) {
    std::snprintf(line, sizeof line, "%-24s", t.c_str());
    std::string row = line;
    for (const auto& s : sel_order)
      for (size_t i = 0; i < tasks.size(); ++i)
        if (tasks[i] == t && sels[i] == s) {
          std::snprintf(line, sizeof line, " %8.3f", values[i]);
          row += line;
        }
    std::snprintf(line, sizeof line, "  %-22s %5.1f%%", best[t].first.c_str(), 100 * best[t].second);
    row += line;
    if (gain_of.count(t)) {
      std::snprintf(line, sizeof line, "  %+6.1f points", 100 * gain_of[t]);
      row += line;
    }
    std::cout << row << "\n";
  }
  if (std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); }))
    std::cout << "(nan: the score is constant over the zoo, saturates on the task, or cannot score a model "
                 "(no source data), and cannot rank it; see docs/selectors.md)\n";
}

}  // namespace zoobench
