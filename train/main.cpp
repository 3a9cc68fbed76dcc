// The `tessera` executable: the library's command line (train/cli.h).
#include "train/cli.h"

int main(int argc, char** argv) { return tessera::cli::main(argc, argv); }
