fn main() {
    std::process::exit(minc::cli::main());
}
