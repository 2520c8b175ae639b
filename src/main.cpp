#include "cli/cli.h"

int main(int argc, char** argv) { return gdn::cli_main(argc, argv); }
