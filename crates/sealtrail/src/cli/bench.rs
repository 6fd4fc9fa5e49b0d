//! `sealtrail bench`: the benchmark lives in `sealtrail_bench`, an application edge of its own;
//! this only hands it the parsed arguments, so that every command is reached the same way.

use anyhow::Result;

pub fn run(args: sealtrail_bench::BenchArgs) -> Result<()> {
    sealtrail_bench::run(args)
}
