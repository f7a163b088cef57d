//! The `torchlift` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use torchlift::model::LoadOptions;
use torchlift::passes;

mod cli;

#[derive(Parser)]
#[command(
    name = "torchlift",
    version,
    about = "Compile torch.export .pt2 programs to native CPU code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads for running models (default: one per core).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The reference interpreter.
    Interp,
    /// Native code compiled in memory with Cranelift.
    Jit,
    /// The same code compiled ahead of time into a shared library, loaded
    /// and called through its C API.
    Aot,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmitKind {
    /// The model's object file (link it with libtorchlift.a).
    Object,
    /// A static library with the runtime and the C API.
    Staticlib,
    /// A self-contained shared library.
    Sharedlib,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum WeightsArg {
    Embedded,
    External,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetCpuArg {
    Native,
    #[value(name = "x86-64-v2")]
    X86_64V2,
    #[value(name = "x86-64-v3")]
    X86_64V3,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's signature, graph, symbol ranges, weights and op histogram.
    Inspect {
        model: PathBuf,
        /// Print the graph after this export pass (`all` for every pass).
        #[arg(long)]
        after: Option<String>,
        /// Annotate each node with its Python source line.
        #[arg(long)]
        source_lines: bool,
        /// Print the compiler's kernel plan and arena size instead of the graph.
        #[arg(long)]
        kernels: bool,
    },
    /// Run a model once and write its outputs as .npy files.
    Run {
        model: PathBuf,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// A user input, in signature order (repeat for each input). Without
        /// any, the archive's sample inputs are used.
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        /// Where to write output_K.npy.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Run the graph as saved, without the export passes.
        #[arg(long)]
        no_passes: bool,
    },
    /// Time compilation and calls of a model (compile and run reported apart).
    Bench {
        model: PathBuf,
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// A user input, in signature order; without any, the sample inputs.
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 20)]
        iters: usize,
    },
    /// Compile a model ahead of time: an object, a static library or a shared
    /// library, with `torchlift.h` (the C API) and a JSON manifest beside it.
    Compile {
        model: PathBuf,
        /// The artifact to write (e.g. `out/libmlp.so`).
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "sharedlib")]
        emit: EmitKind,
        /// The CPU the code may assume; loading refuses a CPU without it.
        #[arg(long, value_enum, default_value = "native")]
        target_cpu: TargetCpuArg,
        /// Where the weights go: read-only data of the artifact, or a side
        /// file `<name>.weights` beside it, memory-mapped at load.
        #[arg(long, value_enum, default_value = "embedded")]
        weights: WeightsArg,
        /// Declare a custom op by its torch schema, e.g.
        /// "mylib::add_one_(Tensor(a!) x) -> ()"; the artifact links its C
        /// kernel by symbol (see torchlift.h). Repeat for several.
        #[arg(long = "custom-op", value_name = "SCHEMA")]
        custom_ops: Vec<String>,
    },
    /// Run conformance cases (see CASES.md) and compare with PyTorch's outputs.
    Check {
        #[arg(long, value_enum, default_value = "jit")]
        backend: Backend,
        /// Run the graph as saved, without the export passes.
        #[arg(long)]
        no_passes: bool,
        /// Verify the graph after every export pass (always on in debug builds).
        #[arg(long)]
        verify: bool,
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.threads > 0 {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(cli.threads)
            .build_global()
        {
            eprintln!("error: setting up {} threads: {e}", cli.threads);
            return ExitCode::from(1);
        }
    }
    let result = match cli.command {
        Command::Inspect {
            model,
            after,
            source_lines,
            kernels,
        } => {
            if kernels {
                cli::inspect::kernels(&model)
            } else {
                cli::inspect::run(&model, after.as_deref(), source_lines)
            }
        }
        Command::Run {
            model,
            backend,
            inputs,
            output_dir,
            no_passes,
        } => cli::run::run(&model, backend, &inputs, output_dir.as_deref(), no_passes),
        Command::Bench {
            model,
            backend,
            inputs,
            warmup,
            iters,
        } => cli::bench::run(&model, backend, &inputs, warmup, iters),
        Command::Compile {
            model,
            output,
            emit,
            target_cpu,
            weights,
            custom_ops,
        } => cli::compile::run(&model, &output, emit, target_cpu, weights, &custom_ops),
        Command::Check {
            backend,
            no_passes,
            verify,
            cases,
        } => {
            let opts = LoadOptions {
                run_passes: !no_passes,
                verify_each_pass: verify || passes::VERIFY_BY_DEFAULT,
            };
            cli::check::run(&cases, backend, opts)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
