// Internal to src/comm/: the NCCL Collective, or an error where it was not built.
#pragma once
#include <memory>

#include "zoobench/comm.h"

namespace zoobench::comm {
std::unique_ptr<Collective> make_nccl_collective(std::shared_ptr<Group> group);
}
