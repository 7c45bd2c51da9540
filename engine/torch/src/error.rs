use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Data(String),
    #[error("model: {0}")]
    Model(String),
    #[error("cannot read image `{}`: {message}", .path.display())]
    Image { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Device(String),
}
