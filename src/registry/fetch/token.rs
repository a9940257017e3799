//! Answering an endpoint's 401: Docker's Bearer token flow, or Basic credentials.

use anyhow::Result;

use crate::registry::Source;
use reqwest::Url;

use crate::registry::auth::{token_from_response, token_url};
use crate::registry::config::{Credentials, Endpoint, redact};
use crate::registry::policy::{self, RealmCredentials};

use super::pace::read_bounded;
use super::transport::cause;

use super::{Attempt, Auth, Fetcher, SMALL_DEADLINE};

impl Fetcher {
    /// Answers the endpoint's 401: Docker's Bearer token flow, or Basic with configured
    /// credentials. The realm gets credentials only as [`policy::realm_credentials`] says.
    pub(super) async fn authenticate(
        &mut self,
        e: &Endpoint,
        endpoint: &Url,
        source: &Source,
        challenges: &[crate::registry::auth::Challenge],
    ) -> Result<Auth, Attempt> {
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let url = token_url(c, &source.repository).ok_or_else(|| {
                Attempt::Next(format!(
                    "asks for a Bearer token without a usable realm ({:?})",
                    c.params.get("realm").map(|r| redact(r))
                ))
            })?;
            let shown = policy::printable(&url);
            let realm_host = self.config.host_settings(&policy::authority(&url));
            let credentials = match policy::realm_credentials(endpoint, &url, realm_host.configured)
                .map_err(Attempt::Next)?
            {
                RealmCredentials::Endpoint => e.credentials.clone(),
                RealmCredentials::OwnConfig => realm_host.credentials.clone(),
                RealmCredentials::Anonymous => None,
            };
            (self.debug)(&format!(
                "token request to {shown} ({})",
                if credentials.is_some() {
                    "with credentials"
                } else {
                    "anonymous"
                }
            ));
            let client = self
                .client_for(e, &url)
                .map_err(|err| Attempt::Next(format!("{err:#}")))?;
            let req = match &credentials {
                Some(Credentials::Basic { username, password }) => {
                    client.get(url.clone()).basic_auth(username, Some(password))
                }
                Some(Credentials::IdentityToken(token)) => {
                    // OAuth2 refresh-token grant, as Docker does with an identity token.
                    let mut form = Url::parse("http://form/").expect("static URL");
                    form.query_pairs_mut()
                        .append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", token)
                        .append_pair("client_id", "crimg");
                    for (k, v) in url.query_pairs() {
                        form.query_pairs_mut().append_pair(&k, &v);
                    }
                    let mut bare = url.clone();
                    bare.set_query(None);
                    client
                        .post(bare)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(form.query().unwrap_or_default().to_string())
                }
                None => client.get(url.clone()),
            };
            let resp = req.timeout(SMALL_DEADLINE).send().await.map_err(|err| {
                Attempt::Next(format!("token request to {shown}: {}", cause(&err)))
            })?;
            let status = resp.status();
            let body = read_bounded(resp, 1 << 20).await.map_err(Attempt::Next)?;
            if !status.is_success() {
                return Err(Attempt::Next(format!(
                    "token endpoint {shown} answered {status}"
                )));
            }
            return token_from_response(&body)
                .map(Auth::Bearer)
                .ok_or_else(|| Attempt::Next(format!("token endpoint {shown} sent no token")));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match &e.credentials {
                Some(Credentials::Basic { username, password }) => {
                    Ok(Auth::Basic(username.clone(), password.clone()))
                }
                _ => Err(Attempt::Next(format!(
                    "needs credentials; configure them for {} in registries.yaml `configs`",
                    e.authority()
                ))),
            };
        }
        Err(Attempt::Next(
            "answered 401 without a challenge crimg understands".into(),
        ))
    }
}
