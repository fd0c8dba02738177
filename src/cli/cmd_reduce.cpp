// `zoobench reduce results/<exp>`: the shards merged, the tables computed.
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "zoobench/error.h"
#include "zoobench/reduce.h"

namespace zoobench::cli {

int cmd_reduce(const Args& args) {
  po::options_description opts("zoobench reduce");
  opts.add_options()("target", po::value<std::string>()->required(), "an experiment folder (results/<exp>) or a results.h5")(
      "print", "show the main table (per shot: Spearman, Kendall, selections to best, top-1 gain)")(
      "resamples", po::value<int>()->default_value(2000), "bootstrap resamples for the 95 % intervals")(
      "seed", po::value<uint64_t>()->default_value(0), "bootstrap seed")(
      "require-complete", "fail on an unfinished experiment (naming its first missing unit) instead of merging what is done");
  po::positional_options_description pos;
  pos.add("target", 1);
  auto vm = parse("zoobench reduce <results/exp | results.h5> [--print] [--resamples N] [--seed S]", opts, args, &pos);
  if (!vm) return 0;
  const std::string target = (*vm)["target"].as<std::string>();
  if (!std::filesystem::exists(target))
    throw UsageError("'" + target + "': no such experiment folder (results/<exp>) or results.h5");
  ReduceOptions o;
  o.print = vm->count("print") > 0;
  o.resamples = (*vm)["resamples"].as<int>();
  o.seed = (*vm)["seed"].as<uint64_t>();
  o.require_complete = vm->count("require-complete") > 0;
  if (o.resamples < 100) throw UsageError("--resamples must be at least 100, got " + std::to_string(o.resamples));
  reduce((*vm)["target"].as<std::string>(), o);
  return 0;
}

}  // namespace zoobench::cli
