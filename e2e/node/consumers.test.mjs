// Third-party consumers from npm against a real Gatehouse (started by
// TestNodeConsumers in consumers_test.go, which passes its address and
// credentials in the environment): jose verifies an access token with the
// JWKS, issuer and audience; oauth4webapi discovers the server, then uses
// the token endpoint (client_credentials with client_secret_basic,
// refresh_token as a public client), introspection and revocation.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as jose from "jose";
import * as oauth from "oauth4webapi";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through go test ./e2e -run TestNodeConsumers`);
  return v;
};
const issuer = env("GH_ISSUER");
const insecure = { [oauth.allowInsecureRequests]: true }; // the test server is http://127.0.0.1

test("jose verifies an access token with issuer and audience", async () => {
  const jwks = jose.createRemoteJWKSet(new URL(issuer + "/.well-known/jwks.json"));
  const { payload, protectedHeader } = await jose.jwtVerify(env("GH_ORDERS_TOKEN"), jwks, {
    issuer, audience: "https://orders.example", typ: "at+jwt", algorithms: ["EdDSA"],
  });
  assert.equal(protectedHeader.alg, "EdDSA");
  assert.equal(payload.sub, env("GH_USER_ID"));
  assert.equal(payload.client_id, "gatehouse");
  await assert.rejects(jose.jwtVerify(env("GH_TOKEN"), jwks, { issuer, audience: "https://orders.example" }), /aud/);
});

test("oauth4webapi: discovery, client_credentials, introspection, refresh, revocation", async () => {
  const as = await oauth.processDiscoveryResponse(new URL(issuer),
    await oauth.discoveryRequest(new URL(issuer), { algorithm: "oauth2", ...insecure }));
  assert.equal(as.token_endpoint, issuer + "/v1/oauth/token");

  const service = { client_id: env("GH_SERVICE_ID") };
  const cc = await oauth.processClientCredentialsResponse(as, service,
    await oauth.clientCredentialsGrantRequest(as, service, oauth.ClientSecretBasic(env("GH_SERVICE_SECRET")), new URLSearchParams(), insecure));
  assert.equal(cc.token_type, "bearer");
  assert.ok(cc.access_token);

  const resource = { client_id: env("GH_RESOURCE_ID") };
  const basic = oauth.ClientSecretBasic(env("GH_RESOURCE_SECRET"));
  const active = await oauth.processIntrospectionResponse(as, resource,
    await oauth.introspectionRequest(as, resource, basic, cc.access_token, insecure));
  assert.equal(active.active, true);
  assert.equal(active.client_id, service.client_id);

  // The first-party client is public: refresh without client authentication.
  const app = { client_id: "gatehouse" };
  const refreshed = await oauth.processRefreshTokenResponse(as, app,
    await oauth.refreshTokenGrantRequest(as, app, oauth.None(), env("GH_REFRESH"), insecure));
  assert.ok(refreshed.refresh_token.startsWith("ghr_"));
  // A refresh token is never active for a resource server.
  const inactive = await oauth.processIntrospectionResponse(as, resource,
    await oauth.introspectionRequest(as, resource, basic, refreshed.refresh_token, insecure));
  assert.equal(inactive.active, false);

  await oauth.processRevocationResponse(await oauth.revocationRequest(as, resource, basic, refreshed.access_token, insecure));
  const revoked = await oauth.processIntrospectionResponse(as, resource,
    await oauth.introspectionRequest(as, resource, basic, refreshed.access_token, insecure));
  assert.equal(revoked.active, false);
});
