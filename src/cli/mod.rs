//! The command line around the library: the options ([`args`]), the job they ask for
//! ([`build`]), running it with a progress display ([`run`], [`display`]).

pub mod args;
pub mod build;
pub mod display;
pub mod run;
