fn main() {
    std::process::exit(skyplan::cli::main());
}
