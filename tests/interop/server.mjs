// A standard OpenID provider for the interoperability test (`cargo test --test interop`).
//
// oidc-provider (https://github.com/panva/node-oidc-provider, OpenID Certified) with the device
// flow, refresh tokens, revocation, introspection and userinfo enabled, and its development
// interactions: the verification page, a login form that accepts any name and password, and a
// consent form — plain HTML forms a test drives with an HTTP client and a cookie jar.
//
//   node server.mjs [PORT] [--exit-with-stdin]
//
// Listens on 127.0.0.1:PORT (0 or absent: any free port) and prints one JSON line on stdout:
// {"issuer":"http://127.0.0.1:PORT","port":PORT}. With --exit-with-stdin it exits when its stdin
// closes, so it cannot outlive a test that was killed.
//
// Clients (all: device_code + refresh_token grants, no redirect URIs):
//   zoho-device-test          public (token_endpoint_auth_method "none")
//   zoho-device-confidential  client_secret_post, secret "interop-secret"
//   zoho-device-short-lived   public; its device codes live SHORT_DEVICE_CODE_TTL seconds (default 3)
//
// Environment: DEVICE_CODE_TTL (seconds, default 600) for the other clients' device codes;
// ACCESS_TOKEN_TTL (seconds, default 3600).

import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const port = Number(args.find((a) => /^\d+$/.test(a)) ?? 0);
const exitWithStdin = args.includes('--exit-with-stdin');

const seconds = (name, fallback) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
};
const deviceCodeTtl = seconds('DEVICE_CODE_TTL', 600);
const shortDeviceCodeTtl = seconds('SHORT_DEVICE_CODE_TTL', 3);
const accessTokenTtl = seconds('ACCESS_TOKEN_TTL', 3600);

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const common = {
  grant_types: [DEVICE, 'refresh_token'],
  response_types: [],
  redirect_uris: [],
};

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  const issuer = `http://127.0.0.1:${actual}`;

  const provider = new Provider(issuer, {
    clients: [
      { ...common, client_id: 'zoho-device-test', token_endpoint_auth_method: 'none' },
      {
        ...common,
        client_id: 'zoho-device-confidential',
        client_secret: 'interop-secret',
        token_endpoint_auth_method: 'client_secret_post',
      },
      { ...common, client_id: 'zoho-device-short-lived', token_endpoint_auth_method: 'none' },
    ],
    // Any login name is an account; its claims are just its name.
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return { sub, name: sub }; } };
    },
    scopes: ['openid', 'offline_access'],
    claims: { openid: ['sub'], profile: ['name'] },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    ttl: {
      DeviceCode(_ctx, _code, client) {
        return client.clientId === 'zoho-device-short-lived' ? shortDeviceCodeTtl : deviceCodeTtl;
      },
      AccessToken: accessTokenTtl,
      Grant: 14 * 24 * 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 14 * 24 * 3600,
      IdToken: 3600,
    },
  });

  // One line per protocol event on stderr (the test shows them when it fails).
  for (const event of [
    'device_authorization.success',
    'device_authorization.error',
    'grant.success',
    'grant.error',
    'grant.revoked',
    'revocation.error',
    'introspection.error',
    'userinfo.error',
    'server_error',
  ]) {
    provider.on(event, (ctx, err) => {
      const detail = err instanceof Error ? ` ${err.name}: ${err.message}` : '';
      console.error(`[oidc] ${event}${detail}`);
    });
  }

  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer, port: actual }));
});

if (exitWithStdin) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
// A reader that went away must not take the provider down with it.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
