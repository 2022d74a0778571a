// `podctl completion bash|zsh|fish` and `podctl man`: shell completions
// (clap_complete) and the man page (clap_mangen), generated from the same
// clap definition that parses the command line, so neither can drift from
// it. `podctl man` prints one self-contained page, podctl(1), with every
// command in its COMMANDS section (what a distribution installs as
// man1/podctl.1); `podctl man --out-dir DIR` writes git-style pages
// instead: podctl.1 and one per command (podctl-bgp-peers.1, ...).

use std::io;
use std::path::{Path, PathBuf};

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// The shells podctl writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`, for the program `cmd` describes.
pub fn completion(shell: Shell, mut cmd: clap::Command) -> Vec<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

/// The environment variables podctl reads, for the man page.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "PODROUTE_BGPD, PODROUTE_IPAMD, PODROUTE_POLICY",
        "Where each daemon is, as --bgpd, --ipamd and --policy (which win over them). The older PODROUTE_BGPD_SOCKET, PODROUTE_IPAMD_SOCKET and PODROUTE_POLICY_SOCKET are read after them.",
    ),
    (
        "PODCTL_TLS_CA, PODCTL_TLS_CERT, PODCTL_TLS_KEY",
        "TLS files for https:// endpoints, as --tls-ca, --tls-cert and --tls-key.",
    ),
    ("PODCTL_CONFIG", "The config file, as --config."),
    (
        "NO_COLOR",
        "When set and not empty, tables are not coloured (unless --color always).",
    ),
];

/// The one-page manual: podctl(1) with every command.
pub fn man_page(mut cmd: clap::Command) -> io::Result<Vec<u8>> {
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    for section in [
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        page.extend(without_preamble(|w| section(&man, w))?);
    }

    let mut commands = Roff::new();
    commands.control("SH", ["COMMANDS"]);
    let mut text =
        String::from_utf8_lossy(&without_preamble(|w| commands.to_writer(w))?).into_owned();
    let globals: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    for sub in every_command(&cmd) {
        text.push_str(&command_section(sub, &globals)?);
    }
    page.extend(text.into_bytes());

    let mut extra = Roff::new();
    extra.control("SH", ["ENVIRONMENT"]);
    for (names, meaning) in ENVIRONMENT {
        extra
            .control("TP", [])
            .text([bold(*names)])
            .text([roman(*meaning)]);
    }
    extra.control("SH", ["FILES"]);
    extra
        .control("TP", [])
        .text([bold("~/.config/podroute/podctl.yaml, /etc/podroute/podctl.yaml")])
        .text([roman(
            "The config file, when present and no --config is given (the first found; $XDG_CONFIG_HOME replaces ~/.config): bgpd, ipamd and policy endpoints, and tls: ca, cert, key. Flags and environment variables win over it.",
        )]);
    extra
        .control("TP", [])
        .text([bold("/run/podroute/bgpd.sock, ipamd.sock, policy.sock")])
        .text([roman(
            "The daemons' admin sockets, used when nothing else is set.",
        )]);
    page.extend(without_preamble(|w| extra.to_writer(w))?);
    page.extend(without_preamble(|w| man.render_version_section(w))?);
    Ok(page)
}

/// Writes podctl.1 and a page per command (podctl-bgp-peers.1, ...) into
/// `dir`, as git and cargo ship theirs; returns the files written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    clap_mangen::generate_to(cmd.clone(), dir)?;
    let mut written = vec![dir.join(Man::new(cmd.clone()).get_filename())];
    written.extend(every_command(&cmd).into_iter().map(|sub| {
        let name = sub
            .get_bin_name()
            .unwrap_or(sub.get_name())
            .replace(' ', "-");
        dir.join(format!("{name}.1"))
    }));
    Ok(written)
}

/// Every command below `cmd`, depth first, without hidden ones and
/// clap's `help`.
pub fn every_command(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut found = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        found.push(sub);
        found.extend(every_command(sub));
    }
    found
}

/// One command's part of COMMANDS: its name, synopsis, description and
/// own options (the global ones are in OPTIONS already).
fn command_section(sub: &clap::Command, globals: &[String]) -> io::Result<String> {
    let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_owned();
    // --help is on every command and needs no repeating either.
    let mut own = sub.clone();
    for id in globals.iter().map(String::as_str).chain(["help"]) {
        if own.get_arguments().any(|a| a.get_id() == id) {
            own = own.mut_arg(id, |a| a.hide(true));
        }
    }
    let man = Man::new(own);
    let mut heading = Roff::new();
    heading.control("SS", [name.as_str()]);
    let mut text = String::new();
    text.push_str(&lossy(without_preamble(|w| heading.to_writer(w))?));
    for section in [
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        // Inside a subsection, the section headings go: the parts follow
        // one another as paragraphs.
        let part = lossy(without_preamble(|w| section(&man, w))?);
        for line in part.lines() {
            if line.starts_with(".SH ") {
                text.push_str(".PP\n");
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// What `render` writes, minus the apostrophe preamble every Roff
/// rendering starts with (the page needs it once, from its title).
fn without_preamble(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    render(&mut out)?;
    let text = lossy(out);
    let kept: String = text
        .lines()
        .filter(|line| !line.starts_with(".ie \\n(.g .ds Aq") && !line.starts_with(".el .ds Aq"))
        .flat_map(|line| [line, "\n"])
        .collect();
    Ok(kept.into_bytes())
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
