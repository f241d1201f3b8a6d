package dev.ibac.interop;

import io.spiffe.bundle.jwtbundle.JwtBundleSet;
import io.spiffe.bundle.x509bundle.X509Bundle;
import io.spiffe.bundle.x509bundle.X509BundleSet;
import io.spiffe.provider.SpiffeSslContextFactory;
import io.spiffe.provider.SpiffeSslContextFactory.SslContextOptions;
import io.spiffe.spiffeid.SpiffeId;
import io.spiffe.svid.jwtsvid.JwtSvid;
import io.spiffe.svid.x509svid.X509Svid;
import io.spiffe.workloadapi.DefaultWorkloadApiClient;
import io.spiffe.workloadapi.DefaultX509Source;
import io.spiffe.workloadapi.Watcher;
import io.spiffe.workloadapi.WorkloadApiClient;
import io.spiffe.workloadapi.X509Context;
import io.spiffe.workloadapi.X509Source;

import java.io.InputStream;
import java.math.BigInteger;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;

/**
 * Reads SPIFFE_ENDPOINT_SOCKET and prints one line per step, as the Go and
 * Python clients beside it do: x509, bundles, jwt, mtls, rotated.
 */
public final class Client {
    public static void main(String[] args) {
        try {
            run();
        } catch (Exception e) {
            // gRPC's threads would keep the JVM alive after a failure.
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run() throws Exception {
        long wait = Long.parseLong(System.getenv().getOrDefault("IBAC_INTEROP_WAIT", "60"));
        WorkloadApiClient client = DefaultWorkloadApiClient.newClient();

        X509Context context = client.fetchX509Context();
        X509Svid svid = context.getDefaultSvid();
        SpiffeId id = svid.getSpiffeId();
        X509Bundle bundle = context.getX509BundleSet().getBundleForTrustDomain(id.getTrustDomain());
        BigInteger first = svid.getLeaf().getSerialNumber();
        say("x509 " + id + " " + first.toString(16) + " " + bundle.getX509Authorities().size());

        X509BundleSet bundles = client.fetchX509Bundles();
        bundles.getBundles().forEach((td, b) -> say("bundles " + td + " " + b.getX509Authorities().size()));

        String audience = System.getenv("IBAC_INTEROP_AUDIENCE");
        if (audience != null && !audience.isEmpty()) {
            JwtSvid token = client.fetchJwtSvid(audience);
            JwtBundleSet jwtBundles = client.fetchJwtBundles();
            // Checked twice: here against the JWT bundle, and by the agent.
            JwtSvid local = JwtSvid.parseAndValidate(token.getToken(), jwtBundles, Set.of(audience));
            JwtSvid remote = client.validateJwtSvid(token.getToken(), audience);
            if (!local.getSpiffeId().equals(id) || !remote.getSpiffeId().equals(id)) {
                throw new IllegalStateException("JWT-SVID for " + local.getSpiffeId());
            }
            say("jwt " + local.getSpiffeId() + " " + String.join(",", local.getAudience()));
        }

        String urls = System.getenv().getOrDefault("IBAC_INTEROP_URL", "").trim();
        if (!urls.isEmpty()) {
            SpiffeId server = SpiffeId.parse(System.getenv("IBAC_INTEROP_SERVER_ID"));
            X509Source source = DefaultX509Source.newSource(
                DefaultX509Source.X509SourceOptions.builder().workloadApiClient(client).build());
            SSLContext tls = SpiffeSslContextFactory.getSslContext(SslContextOptions.builder()
                .x509Source(source)
                // ibac's proxy speaks TLS 1.3 only; java-spiffe's default is 1.2.
                .sslProtocol("TLSv1.3")
                .acceptedSpiffeIdsSupplier(() -> Set.of(server))
                .build());
            for (String url : urls.split("\\s+")) {
                HttpsURLConnection connection = (HttpsURLConnection) new URL(url).openConnection();
                connection.setSSLSocketFactory(tls.getSocketFactory());
                // SVIDs carry no DNS names: the server is authorized by its SPIFFE ID above.
                connection.setHostnameVerifier((host, session) -> true);
                connection.setConnectTimeout(10_000);
                connection.setReadTimeout(10_000);
                int status = connection.getResponseCode();
                InputStream body = status < 400 ? connection.getInputStream() : connection.getErrorStream();
                String text = body == null ? "" : new String(body.readAllBytes(), StandardCharsets.UTF_8);
                say("mtls " + status + " " + text.trim());
            }
        }

        CompletableFuture<BigInteger> rotated = new CompletableFuture<>();
        client.watchX509Context(new Watcher<X509Context>() {
            @Override
            public void onUpdate(X509Context update) {
                BigInteger serial = update.getDefaultSvid().getLeaf().getSerialNumber();
                if (!serial.equals(first)) {
                    rotated.complete(serial);
                }
            }

            @Override
            public void onError(Throwable error) {
                rotated.completeExceptionally(error);
            }
        });
        say("rotated " + rotated.get(wait, TimeUnit.SECONDS).toString(16));
        System.exit(0);
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
