// The `tessera` executable: the library's command line (train/cli.h).
#include "tessera/train/cli.h"

int main(int argc, char** argv) { return tessera::cli::main(argc, argv); }
