package testsupport

// IssueProfiles is a profiles file (docs/profiles.md) for the issuing
// tests: github binds the variables owner and repo, has the one credential
// slot token and lives at most an hour; duo has the slots key-a and key-b,
// no variable, and the default lifetime.
const IssueProfiles = `profiles:
  - name: github
    accept: [basic, bearer]
    maxLifetime: 1h
    routes:
      - class: git
        origin: https://github.com
        paths: ["/{owner}/{repo}/info/refs", "/{owner}/{repo}/git-upload-pack"]
        credential: token
        inject: {basic: x-access-token}
  - name: duo
    accept: [bearer]
    routes:
      - class: a
        origin: https://a.example
        paths: ["/v1/**"]
        credential: key-a
        inject: bearer
      - class: b
        origin: https://b.example
        paths: ["/v1/**"]
        credential: key-b
        inject: {header: x-api-key}
`
