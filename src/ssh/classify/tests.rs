//! The classifier as a table: what ssh printed, in which situation, and the verdict.

use super::*;

const FP_BOX: &str = "SHA256:AB8q+EkkSzjLpANTWede8+n8lETwPejlzcMVJ/Os5Ec";
const FP_GEN: &str = "SHA256:Zk1dOWd0cGuY8nKqEOHcPqf1iS2Y0pQG0bWbQ6l3m8Q";
const FP_ODD: &str = "SHA256:3rdKeyNobodyExpectsXXXXXXXXXXXXXXXXXXXXXXX";

/// What ssh 9.2 prints (LogLevel INFO) when the key shown differs from the one on file.
fn changed(fp: &str) -> String {
    format!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
         The fingerprint for the ED25519 key sent by the remote host is\n\
         {fp}.\n\
         Please contact your system administrator.\n\
         Offending ED25519 key in /p/.envctl/known_hosts:1\n\
         Host key for web1 has changed and you have requested strict checking.\n\
         Host key verification failed.\n"
    )
}

const UNKNOWN_TYPE: &str = "No ED25519 host key is known for web1 and you have requested \
                            strict checking.\nHost key verification failed.\n";

#[derive(Debug)]
enum Want {
    NotYet(&'static str),
    Never(&'static str),
}

#[test]
fn verdicts() {
    let box_seen = [FP_BOX.to_string()];
    let pinned_final = HostKeyRule::GeneratedOnly;
    let pinned_boot = HostKeyRule::GeneratedOrBox {
        first_seen: &box_seen,
    };
    let pinned_unseen = HostKeyRule::GeneratedOrBox { first_seen: &[] };
    let first = HostKeyRule::FirstSeenOrGenerated { generated: FP_GEN };
    let cases: Vec<(String, HostKeyRule, Want)> = vec![
        // Transient: the machine is on its way.
        ("ssh: connect to host 10.0.0.11 port 22: Connection refused\n".into(), pinned_final, Want::NotYet("not listening")),
        ("ssh: connect to host 10.0.0.11 port 22: Connection timed out\n".into(), pinned_final, Want::NotYet("no answer")),
        ("Connection timed out during banner exchange\nConnection to 10.0.0.11 port 22 timed out\n".into(), pinned_final, Want::NotYet("does not answer")),
        ("ssh: connect to host 10.0.0.11 port 22: No route to host\n".into(), pinned_final, Want::NotYet("no route")),
        ("ssh: connect to host 10.0.0.11 port 22: Network is unreachable\n".into(), pinned_final, Want::NotYet("no route")),
        ("kex_exchange_identification: read: Connection reset by peer\nConnection reset by 10.0.0.11 port 22\n".into(), pinned_final, Want::NotYet("reset")),
        ("kex_exchange_identification: Connection closed by remote host\nConnection closed by 10.0.0.11 port 22\n".into(), pinned_final, Want::NotYet("before answering")),
        ("System is booting up. Unprivileged users are not permitted to log in yet. Please come back later. For technical details, see pam_nologin(8).\n\nConnection closed by 10.0.0.11 port 22\n".into(), pinned_final, Want::NotYet("still booting")),
        ("vagrant@10.0.0.11: Permission denied (publickey).\n".into(), pinned_final, Want::NotYet("not accepted yet")),
        ("Connection to 10.0.0.11 closed by remote host.\n".into(), first, Want::NotYet("closed")),
        ("no answer within 30s".into(), pinned_final, Want::NotYet("no answer within 30s")),
        ("".into(), pinned_final, Want::NotYet("without a message")),
        // Host keys: what is expected somewhere is transient, anything else is not.
        (changed(FP_ODD), pinned_final, Want::Never("other than the one envctl generated")),
        (UNKNOWN_TYPE.into(), pinned_final, Want::Never("other than the one envctl generated")),
        (changed(FP_BOX), pinned_boot, Want::NotYet("box's own host key")),
        (changed(FP_BOX), pinned_unseen, Want::NotYet("box's own host key")),
        (UNKNOWN_TYPE.into(), pinned_boot, Want::NotYet("box's own host key")),
        (changed(FP_ODD), pinned_boot, Want::Never("neither the one envctl generated nor the box's own")),
        (changed(FP_GEN), first, Want::NotYet("already presents the host key envctl generated")),
        (changed(FP_ODD), first, Want::Never("neither the box's own seen first nor the one envctl generated")),
        // Never: nothing on the machine will change by itself.
        ("sudo: a password is required\n".into(), first, Want::Never("without a password")),
        ("sudo: a terminal is required to read the password; either use the -S option\n".into(), first, Want::Never("without a password")),
        ("vagrant is not in the sudoers file.  This incident will be reported.\n".into(), first, Want::Never("may not run sudo")),
        ("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\n".into(), pinned_final, Want::Never("open to others")),
        ("Bad owner or permissions on /p/.envctl/id_ed25519\n".into(), pinned_final, Want::Never("refuses a file")),
        ("command-line line 0: keyword userknownhostsfile extra arguments at end of line\n".into(), pinned_final, Want::Never("rejects envctl's options")),
        ("percent_expand: unknown key %q\n".into(), pinned_final, Want::Never("rejects envctl's options")),
        ("Unable to negotiate with 10.0.0.11 port 22: no matching host key type found. Their offer: ssh-dss\n".into(), pinned_final, Want::Never("no algorithm in common")),
        ("Received disconnect from 10.0.0.11 port 22:2: Too many authentication failures\n".into(), first, Want::Never("refuses the keys")),
    ];
    for (stderr, rule, want) in cases {
        let got = classify(&stderr, rule);
        let ok = match (&want, &got) {
            (Want::NotYet(part), Verdict::NotYet(text))
            | (Want::Never(part), Verdict::Never(text)) => text.contains(part),
            _ => false,
        };
        assert!(
            ok,
            "stderr {stderr:?} under {rule:?}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn the_fingerprint_shown_is_read_back() {
    assert_eq!(
        presented_fingerprint(&changed(FP_BOX)).as_deref(),
        Some(FP_BOX)
    );
    assert_eq!(presented_fingerprint(UNKNOWN_TYPE), None);
}

/// The reason quotes the line that decided, from the original text.
#[test]
fn the_reason_quotes_the_deciding_line() {
    let verdict = classify(
        "debug noise\nssh: connect to host 10.0.0.11 port 22: Connection refused\nmore\n",
        HostKeyRule::GeneratedOnly,
    );
    assert_eq!(
        verdict,
        Verdict::NotYet(
            "sshd is not listening yet (ssh: connect to host 10.0.0.11 port 22: Connection refused)"
                .into()
        )
    );
}
