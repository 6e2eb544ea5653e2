//! `monitor query` (placeholder: being written).

pub async fn run(_args: crate::cli::QueryArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
