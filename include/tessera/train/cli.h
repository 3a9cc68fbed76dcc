// The `tessera` command line as a library entry point: train, eval, predict, summary,
// gradcheck, bench, import, export and attention from one table of commands. Exit status: 0 success, 2 usage and
// config errors, 1 other failures, 128 + N when signal N stopped a run (130 for Ctrl-C).
#pragma once

#include <string>
#include <vector>

#include "tessera/bench/bench.h"

namespace tessera::cli {

// Every option any command takes.
struct Args {
  std::string config, checkpoint, resume;
  std::vector<std::string> sets, images;
  int top_k = 5;
  int samples = 6;
  std::string weights, output;  // import and export
  int heads = 0;                // import: 0 = dim / 64
  std::string dtype = "f32";    // export
  bool per_head = false;        // attention
  bench::BenchOptions bench;
};

// The arguments after the program name, parsed: the command to run with its arguments, or
// (run empty) the exit status with what to print, for --help, --version and usage errors.
struct Parsed {
  int (*run)(const Args&) = nullptr;
  Args args;
  int status = 0;
  std::string output;  // for stdout
  std::string error;   // for stderr: one line
};
Parsed parse(const std::vector<std::string>& args);

// Parses and runs; every error becomes one line on stderr and its exit status.
int main(int argc, char** argv);

}  // namespace tessera::cli
