// Command-line front end: `gdnserve <command> ...`. Each command lives in its own file and
// registers itself on the CLI11 app. Input errors (gdn::InputError, bad flags) print one line on
// stderr and exit with code 2; internal errors abort.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "model/tensor_binder.h"

namespace gdn {

int cli_main(int argc, char** argv);

void add_logits_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_make_demo_command(CLI::App& app);
void add_render_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_detokenize_command(CLI::App& app);

// --activations declared|bf16 → how quantized checkpoints compute (bf16 = weight-only).
ActivationMode activation_mode(const std::string& flag_value);

// --backend auto|cuda|cpu → whether to run on the GPU. auto = the GPU when this build has CUDA and a
// device is visible; cuda without either is an InputError.
bool use_cuda_backend(const std::string& backend);

// "1,2,3" → {1, 2, 3}; throws InputError naming `flag` on anything else.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag);

}  // namespace gdn
