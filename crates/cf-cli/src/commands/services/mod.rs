//! The cf CLI v8 service commands against CF's v3 service API: the
//! marketplace, service instances (managed and user-provided), app
//! bindings, service keys, service brokers and plan access. What is shared
//! by them: `-c`/`-p`/`-t` parsing, the CF error texts they treat as "done
//! already", finding instances, and following a job (`202` + `Location`).

pub mod access;
pub mod bind;
pub mod brokers;
pub mod create_service;
pub mod delete_service;
pub mod keys;
pub mod list;
pub mod marketplace;
pub mod show;
pub mod update_service;
pub mod user_provided;

#[cfg(test)]
pub(crate) mod test_server;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{enc, env_secs, Backoff, Ctx};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::models::{Job, ServiceInstance};

/// CF's text for a `-c` that is neither a JSON object nor a file holding one.
pub const INVALID_PARAMS: &str = "Invalid configuration provided for -c flag. Please provide a valid JSON object or path to a file containing a valid JSON object.";

/// `-c PARAMETERS`: a JSON object given inline or in a file (a path that
/// exists is read, as the cf CLI does). Checked before any request.
pub fn parse_params(arg: Option<&str>) -> Result<Option<Value>> {
    let Some(arg) = arg else { return Ok(None) };
    let bad = || CliError::Usage(format!("Incorrect Usage: {INVALID_PARAMS}"));
    let text = if Path::new(arg).exists() {
        std::fs::read_to_string(arg).map_err(|_| bad())?
    } else {
        arg.to_string()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        _ => Err(bad()),
    }
}

/// `-t "a, b"`: comma-separated tags, trimmed, empty ones dropped.
pub fn parse_tags(arg: &str) -> Vec<String> {
    arg.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// What `-p` of `create-user-provided-service` says.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// A JSON object, inline or from a file.
    Json(Value),
    /// `"user, pass"`: names whose values are asked for one by one.
    Prompt(Vec<String>),
}

/// `-p CREDENTIALS` as the cf CLI reads it: quotes around it dropped, then
/// a JSON object, else a file holding one (a file with something else is
/// an error), else a comma list of names to prompt for.
pub fn parse_credentials(arg: &str) -> Result<Option<Credentials>> {
    let input = arg.trim_matches(['"', '\'']);
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(input) {
        return Ok(Some(Credentials::Json(v)));
    }
    if let Ok(text) = std::fs::read_to_string(input) {
        return match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(Some(Credentials::Json(v))),
            _ => Err(CliError::Usage(format!(
                "Incorrect Usage: The file '{input}' contains invalid JSON. Please provide a path to a file containing a valid JSON object."
            ))),
        };
    }
    if input.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Prompt(
        input.split(',').map(|k| k.trim().to_string()).collect(),
    )))
}

/// The credentials object: as given, or asked for (each value on the
/// terminal without echo, as the cf CLI's password prompts).
pub fn credentials_value(c: Credentials) -> Result<Value> {
    match c {
        Credentials::Json(v) => Ok(v),
        Credentials::Prompt(keys) => {
            let mut m = serde_json::Map::new();
            for k in keys {
                let v = super::common::ask(&k, true)?.unwrap_or_default();
                m.insert(k, Value::String(v));
            }
            Ok(Value::Object(m))
        }
    }
}

/// The CF error texts (422 `detail`) the cf CLI takes as "done already".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// "The service instance name is taken: NAME."
    InstanceName,
    /// "The app is already bound to the service instance"
    AppBound,
    /// "The binding name is invalid. Key binding names must be unique. ..."
    KeyName,
}

/// Which "done already" error this is, if any (matched on the detail text,
/// as the cf CLI does).
pub fn taken(e: &CliError) -> Option<Taken> {
    let CliError::Api { detail, .. } = e else {
        return None;
    };
    [
        ("The service instance name is taken", Taken::InstanceName),
        (
            "The app is already bound to the service instance",
            Taken::AppBound,
        ),
        ("Key binding names must be unique", Taken::KeyName),
    ]
    .into_iter()
    .find(|(text, _)| detail.contains(text))
    .map(|(_, t)| t)
}

/// What a create answered: there already (a [`Taken`] text), or created,
/// with its job's URL when it answered `202`.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    Taken,
    Created(Option<String>),
}

/// `POST path body`; the error `already` means the thing is there.
pub async fn post_create(
    client: &Client,
    path: &str,
    body: Value,
    already: Taken,
) -> Result<Posted> {
    match client
        .write(
            reqwest::Method::POST,
            path,
            crate::client::ReqBody::Json(body),
        )
        .await
    {
        Ok((loc, _)) => Ok(Posted::Created(loc)),
        Err(e) if taken(&e) == Some(already) => Ok(Posted::Taken),
        Err(e) => Err(e),
    }
}

/// How a create, bind or delete ended: nothing to do (there already, or
/// gone already), or how far its job got.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Already,
    Job(JobEnd),
}

/// How far a job got when the command stops following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Done (or there was no job: a 200, 201 or 204).
    Complete,
    /// Waiting on the broker (`POLLING`) and `--wait` was not given.
    InProgress,
}

/// CF's text for a failed job: `Job (GUID) failed: <errors[0].detail>`.
pub fn job_failed(job: &Job) -> CliError {
    CliError::other(format!(
        "Job ({}) failed: {}",
        job.guid,
        super::common::job_detail(job)
    ))
}

/// One look at a job: where following it ends (`None`: look again). A
/// `FAILED` job is an error.
pub fn job_step(job: &Job, wait: bool) -> Result<Option<JobEnd>> {
    match job.state.as_str() {
        "COMPLETE" => Ok(Some(JobEnd::Complete)),
        "FAILED" => Err(job_failed(job)),
        "POLLING" if !wait => Ok(Some(JobEnd::InProgress)),
        _ => Ok(None),
    }
}

/// Follow the job of a `202` (`location`; none means done). Without
/// `wait` it stops once the broker is being polled, as the cf CLI does;
/// with `wait` it prints `Waiting for the operation to complete` and a dot
/// a look. `CF_JOB_TIMEOUT` seconds (3600) at the most.
pub async fn follow_job(client: &Client, location: Option<String>, wait: bool) -> Result<JobEnd> {
    follow(client, location, wait, wait).await
}

/// Follow a job to its end without a word (the broker commands, as the
/// cf CLI's).
pub async fn finish_job(client: &Client, location: Option<String>) -> Result<()> {
    follow(client, location, true, false).await.map(|_| ())
}

async fn follow(
    client: &Client,
    location: Option<String>,
    wait: bool,
    show: bool,
) -> Result<JobEnd> {
    let Some(loc) = location else {
        return Ok(JobEnd::Complete);
    };
    use std::io::Write;
    let dots = |s: &str| {
        if show {
            print!("{s}");
            let _ = std::io::stdout().flush();
        }
    };
    dots("Waiting for the operation to complete");
    let deadline = Instant::now() + Duration::from_secs(env_secs("CF_JOB_TIMEOUT", 3600));
    let mut backoff = Backoff::new(Duration::from_secs(2));
    let end = loop {
        let job: Job = match client.get(&loc).await {
            Ok(j) => j,
            Err(e) => break Err(e),
        };
        dots(".");
        match job_step(&job, wait) {
            Ok(Some(end)) => break Ok(end),
            Err(e) => break Err(e),
            Ok(None) if Instant::now() > deadline => {
                break Err(CliError::other(format!(
                    "Timed out waiting for job ({}) to complete",
                    job.guid
                )))
            }
            Ok(None) => backoff.wait().await,
        }
    };
    dots("\n\n");
    end
}

/// The targeted space's service instance named `name`, if any.
pub async fn find_instance_opt(ctx: &Ctx, name: &str) -> Result<Option<ServiceInstance>> {
    let found: Vec<ServiceInstance> = ctx
        .client
        .list(&format!(
            "/v3/service_instances?names={}&space_guids={}",
            enc(name),
            ctx.space.guid
        ))
        .await?;
    Ok(found.into_iter().find(|i| i.name == name))
}

/// CF's `Service instance 'X' not found`.
pub fn instance_not_found(name: &str) -> CliError {
    CliError::other(format!("Service instance '{name}' not found"))
}

/// The targeted space's service instance named `name`, else CF's error.
pub async fn find_instance(ctx: &Ctx, name: &str) -> Result<ServiceInstance> {
    find_instance_opt(ctx, name)
        .await?
        .ok_or_else(|| instance_not_found(name))
}

/// `{"data": {"guid": G}}`.
pub fn to_one(guid: &str) -> Value {
    json!({"data": {"guid": guid}})
}

/// CF's text for a plan that the lookup did not find.
pub fn plan_not_found(plan: &str, offering: &str, broker: Option<&str>) -> CliError {
    CliError::other(match broker {
        Some(b) => format!(
            "The plan '{plan}' could not be found for service offering '{offering}' and broker '{b}'."
        ),
        None => format!("The plan '{plan}' could not be found for service offering '{offering}'."),
    })
}

/// CF's text for an offering that is not there.
pub fn offering_not_found(offering: &str, broker: Option<&str>) -> CliError {
    CliError::other(match broker {
        Some(b) => format!("Service offering '{offering}' for service broker '{b}' not found."),
        None => format!("Service offering '{offering}' not found."),
    })
}

/// CF's text when an offering name is served by several brokers.
pub fn needs_broker(offering: &str) -> CliError {
    CliError::other(format!(
        "Service offering '{offering}' is provided by multiple service brokers. Specify a broker name by using the '-b' flag."
    ))
}

/// The lines of a table (`crate::format::table`) with `indent` before each.
pub fn indented(indent: &str, rows: &[Vec<String>]) -> String {
    crate::format::table(rows)
        .lines()
        .map(|l| format!("{indent}{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, errors: Value) -> Job {
        serde_json::from_value(json!({"guid": "J1", "state": state, "errors": errors}))
            .expect("job")
    }

    fn api(status: u16, detail: &str) -> CliError {
        CliError::Api {
            status,
            code: Some(10008),
            title: "CF-UnprocessableEntity".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn params_inline_file_and_malformed() {
        assert_eq!(parse_params(None).expect("none"), None);
        assert_eq!(
            parse_params(Some(r#"{"ram_gb": 4}"#)).expect("inline"),
            Some(json!({"ram_gb": 4}))
        );
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("p.json");
        std::fs::write(&f, r#"{"a": {"b": 1}}"#).expect("write");
        assert_eq!(
            parse_params(f.to_str()).expect("file"),
            Some(json!({"a": {"b": 1}}))
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{oops").expect("write");
        for arg in [
            "{oops",
            "[1, 2]",
            "42",
            "\"s\"",
            bad.to_str().expect("path"),
        ] {
            let e = parse_params(Some(arg)).expect_err(arg);
            assert_eq!(e.to_string(), format!("Incorrect Usage: {INVALID_PARAMS}"));
        }
        // A directory exists but cannot be read as a file.
        assert!(parse_params(dir.path().to_str()).is_err());
    }

    #[test]
    fn tags_are_comma_separated_and_trimmed() {
        assert_eq!(parse_tags("a, b ,c"), vec!["a", "b", "c"]);
        assert_eq!(parse_tags(" list, of,, tags "), vec!["list", "of", "tags"]);
        assert!(parse_tags("").is_empty());
        assert!(parse_tags(" , ").is_empty());
    }

    #[test]
    fn credentials_json_file_or_names() {
        assert_eq!(
            parse_credentials(r#"{"user":"u","pass":"p"}"#).expect("json"),
            Some(Credentials::Json(json!({"user": "u", "pass": "p"})))
        );
        assert_eq!(
            parse_credentials(r#"'{"user":"u"}'"#).expect("quoted"),
            Some(Credentials::Json(json!({"user": "u"})))
        );
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("c.json");
        std::fs::write(&f, r#"{"uri": "postgres://x"}"#).expect("write");
        assert_eq!(
            parse_credentials(f.to_str().expect("path")).expect("file"),
            Some(Credentials::Json(json!({"uri": "postgres://x"})))
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "not json").expect("write");
        let e = parse_credentials(bad.to_str().expect("path")).expect_err("bad file");
        assert!(e.to_string().contains("contains invalid JSON"), "{e}");
        assert_eq!(
            parse_credentials("username, password").expect("names"),
            Some(Credentials::Prompt(vec![
                "username".into(),
                "password".into()
            ]))
        );
        assert_eq!(parse_credentials("").expect("empty"), None);
        assert_eq!(
            credentials_value(Credentials::Json(json!({"a": 1}))).expect("value"),
            json!({"a": 1})
        );
    }

    #[test]
    fn done_already_errors_are_matched_on_cf_texts() {
        assert_eq!(
            taken(&api(422, "The service instance name is taken: db.")),
            Some(Taken::InstanceName)
        );
        assert_eq!(
            taken(&api(
                422,
                "The app is already bound to the service instance"
            )),
            Some(Taken::AppBound)
        );
        assert_eq!(
            taken(&api(
                422,
                "The binding name is invalid. Key binding names must be unique. The service instance already has a key binding with name 'k'."
            )),
            Some(Taken::KeyName)
        );
        assert_eq!(
            taken(&api(422, "Service plan does not allow bindings")),
            None
        );
        assert_eq!(
            taken(&CliError::other("The service instance name is taken")),
            None
        );
    }

    #[test]
    fn job_states_end_following_as_the_cf_cli() {
        let none = json!([]);
        assert_eq!(
            job_step(&job("COMPLETE", none.clone()), false).expect("c"),
            Some(JobEnd::Complete)
        );
        assert_eq!(
            job_step(&job("POLLING", none.clone()), false).expect("p"),
            Some(JobEnd::InProgress)
        );
        assert_eq!(
            job_step(&job("POLLING", none.clone()), true).expect("pw"),
            None
        );
        assert_eq!(job_step(&job("PROCESSING", none), false).expect("pr"), None);
        let failed = job(
            "FAILED",
            json!([{"code": 10009, "title": "CF-UnableToPerform", "detail": "provision could not be completed: The service broker could not be reached"}]),
        );
        assert_eq!(
            job_step(&failed, false).expect_err("failed").to_string(),
            "Job (J1) failed: provision could not be completed: The service broker could not be reached"
        );
    }

    #[test]
    fn not_found_texts() {
        assert_eq!(
            plan_not_found("gold", "db", None).to_string(),
            "The plan 'gold' could not be found for service offering 'db'."
        );
        assert_eq!(
            plan_not_found("gold", "db", Some("b1")).to_string(),
            "The plan 'gold' could not be found for service offering 'db' and broker 'b1'."
        );
        assert_eq!(
            offering_not_found("db", None).to_string(),
            "Service offering 'db' not found."
        );
        assert_eq!(
            instance_not_found("x").to_string(),
            "Service instance 'x' not found"
        );
    }
}
