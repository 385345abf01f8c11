//! Prints the name of every tier-2 feature dimension, one per line with its index.

#![allow(clippy::print_stdout, reason = "an example reports to the terminal")]

fn main() {
    for (i, n) in fl_tiers::features::dimension_names().iter().enumerate() {
        println!("{i}\t{n}");
    }
}
