// Runs another program (sbatch, squeue, scontrol) with an argument vector, no
// shell in between: values from configs and the command line reach it as
// single arguments, so quoting can neither break nor inject anything.
#pragma once
#include <string>
#include <vector>

namespace zoobench {

struct ProcessResult {
  bool started = false;    // false: the program could not be run (not on PATH, ...)
  bool timed_out = false;  // killed after the timeout
  int code = -1;           // exit status; 128 + signal when killed by one
  std::string out, err;
};

// Waits at most timeout_s seconds (then SIGKILL). Extra environment entries
// ("KEY=value") are added to this process's own.
ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s,
                          const std::vector<std::string>& extra_env = {});

// "prog arg 'arg with space'": how to show a command to a person (POSIX shell quoting).
std::string shell_quote(const std::string& s);
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace zoobench
