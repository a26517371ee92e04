//! Verbs whose arguments clap builds only when they are used.
//!
//! clap's derive builds the whole command tree (every verb, every flag, with its help text)
//! before it looks at the command line. minc has some forty verbs, and the Docker-like ones
//! carry many flags, so that build was most of the code and heap a `minc state` or a runtime
//! `create` touched before doing anything. [`Lazy`] wraps a verb's arguments (or a group of
//! subcommands) so that clap adds them only when it selects that verb, or prints the full help
//! ([`clap::Command::defer`]).

use std::ops::{Deref, DerefMut};

use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};

/// `T`'s arguments, added to their subcommand only when clap builds it.
#[derive(Debug, Clone)]
pub struct Lazy<T>(pub T);

impl<T> Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Lazy<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: FromArgMatches> FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Lazy)
    }
    fn from_arg_matches_mut(m: &mut ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
    fn update_from_arg_matches_mut(&mut self, m: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}

impl<T: Args> Args for Lazy<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
    fn augment_args(cmd: Command) -> Command {
        cmd.defer(keeping_about::<T, false>)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        cmd.defer(keeping_about::<T, true>)
    }
}

/// Adds `T`'s arguments, keeping the verb's own help text: `T`'s doc comment (or that of a
/// struct it flattens) would replace it, since it now comes after the verb's.
fn keeping_about<T: Args, const UPDATE: bool>(cmd: Command) -> Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let cmd = if UPDATE {
        T::augment_args_for_update(cmd)
    } else {
        T::augment_args(cmd)
    };
    match (about, long_about) {
        (Some(about), Some(long)) => cmd.about(about).long_about(long),
        (Some(about), None) => cmd.about(about).long_about(None),
        (None, _) => cmd,
    }
}

impl<T: Subcommand> Subcommand for Lazy<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands)
    }
    fn augment_subcommands_for_update(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands_for_update)
    }
    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::{Cli, Command};

    #[test]
    fn deferred_verbs_keep_their_help_and_their_flags() {
        let mut cmd = Cli::command();
        cmd.build();
        let run = cmd.find_subcommand("run").unwrap();
        // The verb's own line, not the doc comment of the flags it flattens.
        let about = run.get_about().unwrap().to_string();
        assert!(about.starts_with("Run an image"), "{about}");
        assert!(run.get_arguments().any(|a| a.get_long() == Some("publish")));
        let ls = cmd
            .find_subcommand("image")
            .and_then(|i| i.find_subcommand("ls"));
        assert!(ls.is_some(), "nested verbs are built too");
    }

    #[test]
    fn a_deferred_verb_parses_its_flags() {
        let cli = Cli::try_parse_from(["minc", "exec", "-t", "--cwd", "/tmp", "c1", "sh"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(a.target, ["c1", "sh"]);
    }
}
