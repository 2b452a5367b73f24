// Package containers starts the worker and a NATS JetStream cluster in Docker
// for the system tests, with testcontainers-go.
//
// No image is pulled: NATSImage and WorkerImage compile static binaries
// (CGO_ENABLED=0, -trimpath, -buildvcs=false) and build FROM-scratch images
// from the repository's own Dockerfiles (deploy/nats/Dockerfile, Dockerfile),
// once per test binary. An image whose ContentLabel matches the sha256 of its
// build context is reused, so only a changed binary or Dockerfile rebuilds.
// Every container and network is removed by t.Cleanup; Ryuk stays off, since
// its image cannot be pulled. When a test fails, the tail of each of its
// containers' logs is printed.
//
// A test that needs a cluster and a worker:
//
//	func TestMain(m *testing.M) {
//		containers.ConfigureEnv() // before anything touches testcontainers
//		os.Exit(m.Run())
//	}
//
//	func TestSomething(t *testing.T) {
//		containers.RequireDocker(t) // skip without Docker; fail under CI=true
//		cluster := containers.StartNATSCluster(t, 3)
//		sim := containers.StartSim(t, cluster.Network)
//		worker := containers.StartWorker(t, cluster.Network, map[string]string{
//			"NATS_URL":     cluster.InternalURLs(),
//			"CHAT_API_URL": containers.SimAPIURL(sim),
//			...
//		})
//		nc, _ := nats.Connect(cluster.ClientURLs(t)) // from the test process
//		...
//		cluster.Nodes[0].Kill(t)  // or Stop, Disconnect; then Start, Connect
//		cluster.WaitHealthy(t)
//	}
package containers
