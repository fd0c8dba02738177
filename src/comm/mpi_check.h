// Internal to src/comm/: an MPI return code as an Error with MPI's own message.
#pragma once
#include <mpi.h>

#include <string>

#include "zoobench/error.h"

namespace zoobench::comm {
inline void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + ": " + std::string(msg, static_cast<size_t>(len)));
}
}  // namespace zoobench::comm
