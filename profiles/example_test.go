package profiles_test

import (
	"fmt"
	"strings"

	"github.com/coze-eraser/coze-eraser/profiles"
)

// Parse a profiles file with a static-token profile and a JWT app, then read
// what a worker needs to call the API as one of them.
func ExampleParse() {
	const file = `profiles:
  support-bot:
    base_url: https://api.coze.cn
    token_file: /run/secrets/coze_service_token
    rate: 50
  app-cn:
    base_url: https://api.coze.cn
    jwt:
      app_id: 1127900106117
      key_id: _v0VjcMlLdQc3tRTD3jC5Xz29TUnKQOhtuD5k-gpyf4
      private_key_file: /run/secrets/coze_app.pem
`
	set, err := profiles.Parse(strings.NewReader(file), "profiles.yaml")
	if err != nil {
		panic(err)
	}
	fmt.Println(set.Names())
	app, _ := set.Get("app-cn")
	fmt.Println(app.JWT.AppID, app.JWT.Audience, app.JWT.TokenTTL)

	// Every broken rule is reported at once, with its line and column.
	_, err = profiles.Parse(strings.NewReader(`profiles:
  support-bot:
    base_url: https://api.coze.cn
    token: pat_xxx
    rate: -1
`), "profiles.yaml")
	fmt.Println(err)
	// Output:
	// [app-cn support-bot]
	// 1127900106117 api.coze.cn 15m0s
	// profiles.yaml:2:3: profiles.support-bot has neither token_file nor jwt: give the file of a static token, or a jwt app
	// profiles.yaml:4:5: profiles.support-bot.token would put a secret in this file: put it in a file and give its path with token_file
	// profiles.yaml:5:11: profiles.support-bot.rate -1: must be 0 (no ceiling: the API's limit is found) or 0.01 to 100000 requests a second
}
