//! The GTID model on the cases that broke it: restored servers, two domains, purged binlogs,
//! chains, a server that was primary twice.

use super::*;

fn obs(binlog: &str, current: &str, start: &[(u32, u64)]) -> ObservedGtids {
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: current.into(),
        slave_pos: String::new(),
        binlog_start: Some(start.iter().copied().collect()),
    }
}

#[test]
fn an_empty_position_is_printed_as_such() {
    assert_eq!(shown(""), "(empty: no transactions yet)");
    assert_eq!(shown(" "), EMPTY_POSITION);
    assert_eq!(shown("0-1-5,1-2-7"), "0-1-5,1-2-7");
}

#[test]
fn ranges_beyond_another_set() {
    let old = GtidSet::parse("0-1-120,1-1-7").unwrap();
    let new = GtidSet::parse("0-1-118,0-2-150,1-1-7").unwrap();
    let r = beyond(&old, &new);
    assert_eq!(describe_ranges(&r), "0-1-119..0-1-120 (2 transactions)");
    assert!(beyond(&new, &GtidSet::parse("0-1-118,0-2-150,1-1-7").unwrap()).is_empty());
    // A stream the other side never had starts after its last in the domain.
    let r = beyond(
        &GtidSet::parse("0-3-5").unwrap(),
        &GtidSet::parse("0-1-4").unwrap(),
    );
    assert_eq!(describe_ranges(&r), "0-3-5 (1 transaction)");
    let r = beyond(&GtidSet::parse("2-3-5").unwrap(), &GtidSet::default());
    assert_eq!(r[0].count(), 1);
}

#[test]
fn parses_and_prints_gtid_lists() {
    let s = GtidSet::parse(" 0-1-100, 14-3-7,0-2-5,").unwrap();
    assert_eq!(s.to_string(), "0-1-100,0-2-5,14-3-7");
    assert_eq!(GtidSet::parse("").unwrap(), GtidSet::default());
    for bad in ["0-1", "a-1-2", "0-1-2-3", "0-1-x"] {
        assert!(GtidSet::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(s.last_seq(0), Some(100));
    assert!(s.covers(Gtid {
        domain: 0,
        server: 1,
        seq: 99
    }));
    assert!(!s.covers(Gtid {
        domain: 0,
        server: 3,
        seq: 1
    }));
}

#[test]
fn a_sibling_with_the_same_history_is_a_safe_new_source() {
    let sec2 = obs("0-1-250", "0-1-250", &[]);
    let sec1 = obs("0-1-260", "0-1-260", &[(0, 100)]);
    assert_eq!(repoint(&sec2, &sec1, &[]), Ok(()));
}

#[test]
fn lag_of_the_new_source_is_not_errant_when_upstream_has_it() {
    let sec2 = obs("0-1-250", "0-1-250", &[]);
    let sec1 = obs("0-1-240", "0-1-240", &[(0, 100)]);
    let upstream = obs("0-1-255", "0-1-255", &[(0, 0)]);
    // Behind on the same stream its upstream has: not errant, but not caught up yet.
    assert_eq!(repoint(&sec2, &sec1, &[&upstream]), Ok(()));
    // With no upstream that has it, what the replica has beyond the source is errant.
    assert!(matches!(repoint(&sec2, &sec1, &[]), Err(Unsafe::Errant(_))));
    assert_eq!(caught_up_with(&sec2, &sec1), Ok(false));
    let later = obs("0-1-251", "0-1-251", &[(0, 100)]);
    assert_eq!(caught_up_with(&sec2, &later), Ok(true));
    // A stream only upstream has (the source has none of it yet) is reachable too.
    let sec2 = obs("0-1-250,7-7-3", "0-1-250,7-7-3", &[]);
    let primary = obs("0-1-255,7-7-3", "0-1-255", &[]);
    assert!(matches!(repoint(&sec2, &sec1, &[]), Err(Unsafe::Errant(_))));
    assert_eq!(repoint(&sec2, &sec1, &[&primary]), Ok(()));
}

#[test]
fn a_local_write_on_the_replica_is_errant_and_named() {
    let sec2 = obs("0-1-250,14-3-1", "0-1-250,14-3-1", &[]);
    let sec1 = obs("0-1-260", "0-1-260", &[]);
    let e = repoint(&sec2, &sec1, &[]).unwrap_err();
    assert_eq!(
        e,
        Unsafe::Errant(vec![Gtid {
            domain: 14,
            server: 3,
            seq: 1
        }])
    );
    assert_eq!(
        e.describe("e-sec2", "e-sec1"),
        "e-sec2 has a transaction that e-sec1 lacks: 14-3-1 (domain 14)"
    );
    // Also within the source's own domain, from another server id.
    let sec2 = obs("0-1-250,0-3-251", "0-3-251", &[]);
    let sec1 = obs("0-1-260", "0-1-260", &[(0, 100)]);
    assert!(matches!(repoint(&sec2, &sec1, &[]), Err(Unsafe::Errant(g)) if g[0].server == 3));
    assert_eq!(
        errant(&sec2, &sec1).unwrap(),
        vec![Gtid {
            domain: 0,
            server: 3,
            seq: 251
        }]
    );
}

#[test]
fn binlogs_that_begin_after_the_replica_make_it_unsafe() {
    let sec2 = obs("0-1-150", "0-1-150", &[]);
    let sec1 = obs("0-1-260", "0-1-260", &[(0, 200)]);
    let e = repoint(&sec2, &sec1, &[]).unwrap_err();
    assert_eq!(
        e,
        Unsafe::Purged {
            domain: 0,
            at: 150,
            starts_after: 200
        }
    );
    let unread = ObservedGtids {
        binlog_start: None,
        ..sec1
    };
    assert!(matches!(
        repoint(&sec2, &unread, &[]),
        Err(Unsafe::Unknown(_))
    ));
}

#[test]
fn lag_alone_is_never_errant() {
    let replica = obs("0-1-90", "0-1-90", &[]);
    let source = obs("0-1-100", "0-1-100", &[]);
    assert_eq!(errant(&replica, &source).unwrap(), vec![]);
    // Further along the source's own stream than the source (read after it): the source
    // lost transactions the replica has.
    let replica = obs("0-1-133", "0-1-133", &[]);
    let source = obs("0-1-132", "0-1-132", &[]);
    assert_eq!(
        errant(&replica, &source).unwrap(),
        vec![Gtid {
            domain: 0,
            server: 1,
            seq: 133
        }]
    );
}

/// A server as the emulator and SkySQL make them: each service writes its own domain with its
/// own server id (service A: domain 19, server 1019; B: 20/1020; C: 21/1021).
fn server(binlog: &str, slave: &str, start: &[(u32, u64)]) -> ObservedGtids {
    // gtid_current_pos: per domain, the later of the binlog's and the slave position's.
    let current = GtidSet::parse(binlog)
        .unwrap()
        .union(&GtidSet::parse(slave).unwrap());
    let mut last: BTreeMap<u32, Gtid> = BTreeMap::new();
    for g in current.iter() {
        let e = last.entry(g.domain).or_insert(g);
        if g.seq > e.seq {
            *e = g;
        }
    }
    let current: Vec<String> = last.values().map(Gtid::to_string).collect();
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: current.join(","),
        slave_pos: slave.into(),
        binlog_start: Some(start.iter().copied().collect()),
    }
}

#[test]
fn a_restored_server_has_what_its_slave_position_names() {
    // B restored from A's backup at 19-1019-383: fresh binlogs, the history in gtid_slave_pos.
    let b = server("", "19-1019-383", &[]);
    let h = b.holdings().unwrap();
    assert!(h.has.covers(Gtid {
        domain: 19,
        server: 1019,
        seq: 383
    }));
    // It serves nothing of domain 19: a replica behind 383 cannot be sent what it lacks.
    assert_eq!(h.serves_after, Some(BTreeMap::from([(19, 383)])));
    // The old primary, fenced at 19-1019-383, follows it: nothing is errant (the bug was
    // "A has a transaction that B lacks: 19-1019-383", read from B's binlog state alone).
    let a = server("19-1019-383", "", &[]);
    assert_eq!(repoint(&a, &b, &[]), Ok(()));
    assert_eq!(caught_up_with(&a, &b), Ok(true));
    // A sibling that is behind the restore point cannot: B's binlogs never held 300..383.
    let c = server("21-1021-4", "19-1019-300", &[(21, 0)]);
    let lagging = repoint(&c, &b, &[]);
    assert!(matches!(lagging, Err(Unsafe::Errant(_))), "{lagging:?}");
    let c = server("", "19-1019-300", &[]);
    assert_eq!(
        repoint(&c, &b, &[]),
        Err(Unsafe::Purged {
            domain: 19,
            at: 300,
            starts_after: 383
        })
    );
}

#[test]
fn a_restored_server_serves_what_it_binlogged_since() {
    // B restored at 19-1019-383, then replicated 384..900 (binlogged, log_slave_updates).
    let b = server("19-1019-900", "19-1019-900", &[(19, 383)]);
    let behind = server("", "19-1019-500", &[]);
    assert_eq!(repoint(&behind, &b, &[]), Ok(()));
    let before = server("", "19-1019-200", &[]);
    assert!(matches!(
        repoint(&before, &b, &[]),
        Err(Unsafe::Purged {
            starts_after: 383,
            ..
        })
    ));
    // Its start is unknown only where the binlogs hold the domain but its start was not read.
    let unread = server("19-1019-900", "19-1019-900", &[]);
    assert!(matches!(
        repoint(&behind, &unread, &[]),
        Err(Unsafe::Unknown(_))
    ));
}

#[test]
fn switching_over_and_back_with_two_domains_needs_no_copy() {
    // A was the primary (domain 19) up to 900; B (restored at 383) took over and wrote domain
    // 20 up to 5,000; A followed it from its own position, its binlogs now holding domain 20
    // from its first event (not named by A's oldest Gtid_list: it appeared later).
    let a = server(
        "19-1019-900,20-1020-5000",
        "20-1020-5000",
        &[(19, 0), (20, 0)],
    );
    let b = server(
        "19-1019-900,20-1020-5000",
        "19-1019-900",
        &[(19, 383), (20, 0)],
    );
    // Switching back: B, fenced at 20-1020-5000, follows A.
    assert_eq!(repoint(&b, &a, &[]), Ok(()));
    // And A, once primary again (domain 19 from 901), serves a sibling at 19-1019-900.
    let a2 = server(
        "19-1019-1200,20-1020-5000",
        "20-1020-5000",
        &[(19, 0), (20, 0)],
    );
    let c = server(
        "19-1019-900,20-1020-5000",
        "20-1020-5000",
        &[(19, 383), (20, 4000)],
    );
    assert_eq!(repoint(&c, &a2, &[]), Ok(()));
    assert_eq!(repoint(&b, &a2, &[]), Ok(()));
}

#[test]
fn a_server_that_was_primary_twice_keeps_its_own_stream() {
    // A primary twice in domain 19 (1..100, then 101..200), B in between (domain 20).
    let a = server("19-1019-200,20-1020-50", "20-1020-50", &[(19, 0), (20, 0)]);
    let b = server("19-1019-200,20-1020-50", "19-1019-200", &[(19, 0), (20, 0)]);
    assert_eq!(repoint(&b, &a, &[]), Ok(()));
    assert_eq!(errant(&b, &a).unwrap(), vec![]);
    // B wrote once more after it was fenced (by hand): errant, named.
    let b = server("19-1019-200,20-1020-51", "19-1019-200", &[(19, 0), (20, 0)]);
    let e = repoint(&b, &a, &[]).unwrap_err();
    assert_eq!(
        e.describe("B", "A"),
        "B has a transaction that A lacks: 20-1020-51 (domain 20)"
    );
}

#[test]
fn purged_binlogs_refuse_a_replica_behind_them_in_any_domain() {
    // A's oldest binlog begins after 19-1019-700 and 20-1020-40.
    let a = server(
        "19-1019-900,20-1020-50",
        "20-1020-50",
        &[(19, 700), (20, 40)],
    );
    let ok = server("19-1019-800,20-1020-45", "19-1019-800,20-1020-45", &[]);
    assert_eq!(repoint(&ok, &a, &[]), Ok(()));
    let old20 = server("19-1019-800,20-1020-30", "19-1019-800,20-1020-30", &[]);
    assert_eq!(
        repoint(&old20, &a, &[]),
        Err(Unsafe::Purged {
            domain: 20,
            at: 30,
            starts_after: 40
        })
    );
    // Nothing needed from a domain where the replica is level: a purge there does not matter.
    let level = server("19-1019-900,20-1020-50", "20-1020-50", &[]);
    assert_eq!(repoint(&level, &a, &[]), Ok(()));
}

#[test]
fn in_a_chain_upstream_lag_is_waited_for_and_upstream_writes_are_served_later() {
    // P (domain 19) → S1 → R; R moves from S1 to S2, a sibling of S1 that lags.
    let p = server("19-1019-1000", "", &[(19, 0)]);
    let r = server("19-1019-990", "19-1019-990", &[(19, 0)]);
    let s2 = server("19-1019-950", "19-1019-950", &[(19, 100)]);
    assert_eq!(repoint(&r, &s2, &[&p]), Ok(()));
    assert_eq!(caught_up_with(&r, &s2), Ok(false));
    // Without the upstream that has them, R's transactions beyond S2 are errant.
    assert!(matches!(repoint(&r, &s2, &[]), Err(Unsafe::Errant(_))));
}

#[test]
fn a_candidate_after_its_catch_up_serves_the_old_primary_and_siblings() {
    // B lags A (880 of 900) and was restored at 383; C replicates A and is at 870.
    let a = server("19-1019-900", "", &[(19, 0)]);
    let b = server("19-1019-880", "19-1019-880", &[(19, 383)]);
    let c = server("19-1019-870", "19-1019-870", &[(19, 0)]);
    let b_after = b.holdings().unwrap().after_applying(&a.holdings().unwrap());
    let h = |o: &ObservedGtids| o.holdings().unwrap();
    assert_eq!(can_follow(&h(&a), &b_after, &[]), Ok(()));
    assert_eq!(can_follow(&h(&c), &b_after, &[]), Ok(()));
    // A sibling behind the candidate's restore point would need a copy: known before the fence.
    let c_old = server("19-1019-300", "19-1019-300", &[(19, 0)]);
    assert!(matches!(
        can_follow(&h(&c_old), &b_after, &[]),
        Err(Unsafe::Purged { domain: 19, .. })
    ));
    // A candidate that binlogged nothing of a domain serves it from where it stands.
    let fresh = server("", "19-1019-880", &[]);
    let after = fresh.holdings().unwrap().after_applying(&h(&a));
    assert_eq!(after.serves_after, Some(BTreeMap::from([(19, 880)])));
    assert_eq!(can_follow(&h(&a), &after, &[]), Ok(()));
    assert!(can_follow(&h(&c), &after, &[]).is_err());
}
