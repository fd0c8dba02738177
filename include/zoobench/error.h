// One exception hierarchy for the whole code base. `main` catches Error,
// prints one line "zoobench: error: <what>" and exits with exit_code().
#pragma once
#include <stdexcept>
#include <string>

namespace zoobench {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  virtual int exit_code() const { return 1; }
};

// Bad command line: unknown command or option, missing argument.
class UsageError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// A config file that breaks the schema (names file:line:col and key path).
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// Raw or packed data that is malformed, missing or of the wrong schema.
class DataError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

// File-system and HDF5 failures (carries HDF5's own message).
class IoError : public Error {
 public:
  using Error::Error;
};

// An error that every MPI rank has agreed on (a check of shared input, or one
// rank's failure in a phase every rank waits on): rank 0 prints it once and
// every rank exits with its code, with no MPI_Abort.
class AgreedError : public Error {
 public:
  AgreedError(const std::string& what, int code) : Error(what), code_(code) {}
  int exit_code() const override { return code_; }

 private:
  int code_;
};

}  // namespace zoobench
