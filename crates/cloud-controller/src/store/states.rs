//! The controller's states (apps, packages, builds, droplets, buildpacks):
//! enums stored and shown as the same uppercase strings as CF's.

use std::fmt;
use std::str::FromStr;

/// A state string that names no state of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

/// An enum of states with its strings: `as_str`, `FromStr`, `Display`,
/// serde and `TryFrom<String>` (how rows decode it) all use them.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident ($kind:literal) { $($variant:ident => $s:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every state, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(UnknownState {
                        kind: $kind,
                        value: s.to_string(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownState;

            fn try_from(s: String) -> Result<Self, UnknownState> {
                s.parse()
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

states! {
    /// An app's desired state.
    AppState("app state") {
        Started => "STARTED",
        Stopped => "STOPPED",
    }
}

states! {
    /// A package's state: its bits are awaited, stored, or were refused.
    PackageState("package state") {
        AwaitingUpload => "AWAITING_UPLOAD",
        Ready => "READY",
        Failed => "FAILED",
    }
}

states! {
    /// A build's state: staging, then staged or failed (once).
    BuildState("build state") {
        Staging => "STAGING",
        Staged => "STAGED",
        Failed => "FAILED",
    }
}

states! {
    /// A droplet's state (the controller stores staged droplets only).
    DropletState("droplet state") {
        Staged => "STAGED",
    }
}

states! {
    /// An admin buildpack's state: created, then its zip uploaded.
    BuildpackState("buildpack state") {
        AwaitingUpload => "AWAITING_UPLOAD",
        Ready => "READY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state round-trips through `as_str`/`FromStr` and serde, and
    /// the table names them all; other strings are errors.
    macro_rules! round_trip {
        ($name:ident, $table:expr) => {{
            let table: &[($name, &str)] = $table;
            assert_eq!(
                table.iter().map(|(st, _)| *st).collect::<Vec<_>>(),
                $name::ALL
            );
            for (state, s) in table {
                assert_eq!(state.as_str(), *s);
                assert_eq!(state.to_string(), *s);
                assert_eq!(s.parse::<$name>(), Ok(*state));
                assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::json!(s)));
                assert_eq!(
                    serde_json::from_value::<$name>(serde_json::json!(s)).ok(),
                    Some(*state)
                );
            }
            for bad in ["", "started", "Staged", "UNKNOWN", " READY"] {
                assert!(bad.parse::<$name>().is_err(), "{bad:?}");
                assert!(serde_json::from_value::<$name>(serde_json::json!(bad)).is_err());
            }
        }};
    }

    #[test]
    fn app_states() {
        round_trip!(
            AppState,
            &[
                (AppState::Started, "STARTED"),
                (AppState::Stopped, "STOPPED")
            ]
        );
    }

    #[test]
    fn package_states() {
        round_trip!(
            PackageState,
            &[
                (PackageState::AwaitingUpload, "AWAITING_UPLOAD"),
                (PackageState::Ready, "READY"),
                (PackageState::Failed, "FAILED"),
            ]
        );
    }

    #[test]
    fn build_states() {
        round_trip!(
            BuildState,
            &[
                (BuildState::Staging, "STAGING"),
                (BuildState::Staged, "STAGED"),
                (BuildState::Failed, "FAILED"),
            ]
        );
    }

    #[test]
    fn droplet_states() {
        round_trip!(DropletState, &[(DropletState::Staged, "STAGED")]);
    }

    #[test]
    fn buildpack_states() {
        round_trip!(
            BuildpackState,
            &[
                (BuildpackState::AwaitingUpload, "AWAITING_UPLOAD"),
                (BuildpackState::Ready, "READY"),
            ]
        );
    }

    #[test]
    fn unknown_state_error_names_kind_and_value() {
        let e = "RUNNING".parse::<AppState>().expect_err("not a state");
        assert_eq!(e.to_string(), r#"unknown app state "RUNNING""#);
    }
}
