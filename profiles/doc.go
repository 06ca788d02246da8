// Package profiles loads the profiles file: the identities coze-eraser
// calls the Coze API as, each with its API, its token source and its rate
// budget. Tasks carry a profile's name, never a secret; the file says where
// the secrets are (files only), and a worker resolves a name to a [Profile].
//
// # The file
//
// A YAML mapping with one key, profiles, mapping each profile's name to its
// settings:
//
//	profiles:
//	  support-bot:                       # a static token: PAT or service token
//	    base_url: https://api.coze.cn
//	    token_file: /run/secrets/coze_service_token
//	    rate: 50                         # optional: ceiling of the adaptive budget, per second
//	  app-cn:                            # an OAuth JWT service app
//	    base_url: https://api.coze.cn
//	    jwt:
//	      app_id: "1127900106117"
//	      key_id: "_v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4"   # the public key's fingerprint
//	      private_key_file: /run/secrets/coze_app.pem             # PKCS#8 or PKCS#1 PEM
//	      audience: api.coze.cn          # optional; default: the host of base_url
//	      token_ttl: 15m                 # optional; duration_seconds asked for, at most 86399 s
//	    rate: 100
//	    burst: 10
//	    max_inflight: 50
//
// The rules, each checked with the line and column of the value that breaks
// it:
//
//   - a profile name has 1 to [MaxNameLen] ASCII letters, digits, '.', '_'
//     or '-', starting with a letter or digit: names reach Redis keys, task
//     payloads and metric labels. "default" may be defined like any other;
//     without a file, [Default] stands for it;
//   - base_url is required: an http or https URL with a host, without a user
//     or password, a query or a fragment;
//   - a profile has exactly one of token_file (a file holding a personal
//     access token or a service token) and jwt (an OAuth JWT service app);
//   - jwt.app_id is the app's id, 1 to 19 digits; quote it ("1127900106117")
//     or not, the digits are kept as written, but a number YAML reads as a
//     float (1.1e12) is refused;
//   - jwt.key_id is the public key's fingerprint and jwt.audience the JWT's
//     aud claim (default: the host of base_url, with its port if it has
//     one): printable ASCII without spaces;
//   - jwt.token_ttl is a Go duration of whole seconds, 1s to 86399s
//     (default 15m): the lifetime asked for each access token;
//   - rate is 0 (the default: the budget finds the API's limit with no
//     ceiling, as the CLI's --rate auto does) or [ratelimit.LowestRate] to
//     [ratelimit.HighestRate] requests a second; burst is 0 (takes 1) to
//     [ratelimit.MaxBurst]; max_inflight is 0 (no cap) to
//     [ratelimit.MaxInflightCap];
//   - secrets are never written in the file: a key named token,
//     access_token, api_key, secret, client_secret, password or private_key
//     is refused with the key to use instead;
//   - any other key, at any level, is an error, as are a duplicate key, an
//     alias, an empty profiles mapping, more than one YAML document and a
//     file larger than [MaxFileBytes].
//
// Parsing reports every broken rule at once, one line each, and returns no
// profiles at all when any rule is broken: a worker must not start with half
// of its configuration. Files named by token_file and private_key_file are
// not opened by [Parse], so a file can be checked on another machine;
// [Set.CheckFiles] checks them where they are used.
package profiles
