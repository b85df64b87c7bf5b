"""The client's configuration: the declarative schema (`schema`), how a file is read against it
(`decode`), and the loader every command goes through (`loader`)."""

from davsync.config.loader import (
    Config,
    DeviceConfig,
    default_config_path,
    default_state_dir,
    load_config,
)
from davsync.config.schema import (
    AuthMode,
    BackupTable,
    DaemonConfig,
    DaemonMode,
    EncryptionMode,
    LogConfig,
    LogFormat,
    LogLevel,
    ServerConfig,
)

__all__ = [
    "AuthMode",
    "BackupTable",
    "Config",
    "DaemonConfig",
    "DaemonMode",
    "DeviceConfig",
    "EncryptionMode",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "ServerConfig",
    "default_config_path",
    "default_state_dir",
    "load_config",
]
