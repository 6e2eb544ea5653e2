//! The dashboard (placeholder: being written).

pub async fn run(_args: crate::cli::TuiArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
