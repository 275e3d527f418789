//! The servers start, answer, and (Redis) come back after a kill.

#[test]
fn postgres_starts_with_a_database_per_test() {
    let Some(server) = caio_testkit::postgres("postgres_starts_with_a_database_per_test") else { return };
    let (first, second) = (server.database(), server.database());
    assert_ne!(first, second);
    let mut client = postgres::Client::connect(&first, postgres::NoTls).expect("connects");
    let row = client.query_one("SELECT current_database()", &[]).expect("answers");
    assert_eq!(Some(row.get::<_, String>(0).as_str()), first.rsplit('/').next());
}

#[test]
fn redis_comes_back_after_a_kill() {
    let Some(mut server) = caio_testkit::redis("redis_comes_back_after_a_kill") else { return };
    let client = redis::Client::open(server.url()).expect("a URL");
    let mut connection = client.get_connection().expect("connects");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut connection).expect("SET");
    server.kill();
    assert!(client.get_connection().is_err(), "nothing listens while it is down");
    server.resume().expect("starts again");
    let mut connection = client.get_connection().expect("connects again");
    let value: Option<String> = redis::cmd("GET").arg("k").query(&mut connection).expect("GET");
    assert_eq!(value, None, "it comes back empty: no persistence");
}
