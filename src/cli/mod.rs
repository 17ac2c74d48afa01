//! The command line: thin commands over the library.

pub fn main() -> i32 {
    0
}
