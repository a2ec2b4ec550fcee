// Creates stint's topics on a broker, idempotently: existing topics are left as they are.
// With --recreate, the named topics are deleted first (their data is gone) and created empty.
// Run by deploy/local/stack with the broker's own jars on the classpath:
//   java -cp 'libs/*' CreateTopics.java [--recreate] BOOTSTRAP PARTITIONS name[:compact] ...
// STINT_KAFKA_CLIENT_CONFIG, when set, names a properties file of client settings (security.protocol,
// sasl.*, ssl.*) loaded into the Admin client's (deploy/local/secure-stack).
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopics {
    public static void main(String[] argv) throws Exception {
        boolean recreate = argv.length > 0 && argv[0].equals("--recreate");
        String[] args = recreate ? Arrays.copyOfRange(argv, 1, argv.length) : argv;
        if (args.length < 3) {
            System.err.println("usage: CreateTopics BOOTSTRAP PARTITIONS name[:compact] ...");
            System.exit(2);
        }
        Properties props = new Properties();
        String clientConfig = System.getenv("STINT_KAFKA_CLIENT_CONFIG");
        if (clientConfig != null && !clientConfig.isEmpty()) {
            try (InputStream in = new FileInputStream(clientConfig)) {
                props.load(in);
            }
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        int partitions = Integer.parseInt(args[1]);
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            String[] parts = args[i].split(":");
            NewTopic t = new NewTopic(parts[0], partitions, (short) 1);
            if (parts.length > 1 && parts[1].equals("compact"))
                t.configs(Map.of("cleanup.policy", "compact"));
            topics.add(t);
        }
        int failed = 0, created = 0;
        try (Admin admin = Admin.create(props)) {
            if (recreate) {
                Set<String> names = new HashSet<>();
                for (NewTopic t : topics)
                    names.add(t.name());
                names.retainAll(admin.listTopics().names().get());
                if (!names.isEmpty()) {
                    admin.deleteTopics(names).all().get();
                    // Deletion finishes asynchronously; wait until the names are free again.
                    for (int i = 0; i < 300; i++) {
                        Set<String> left = new HashSet<>(names);
                        left.retainAll(admin.listTopics().names().get());
                        if (left.isEmpty())
                            break;
                        Thread.sleep(100);
                    }
                    System.out.println("topics: " + names.size() + " deleted");
                }
            }
            CreateTopicsResult res = admin.createTopics(topics);
            for (Map.Entry<String, ?> e : res.values().entrySet()) {
                try {
                    res.values().get(e.getKey()).get();
                    created++;
                } catch (ExecutionException ex) {
                    if (ex.getCause() instanceof TopicExistsException)
                        continue;
                    System.err.println("topic " + e.getKey() + ": " + ex.getCause().getMessage());
                    failed++;
                }
            }
        }
        System.out.println("topics: " + created + " created, " + (topics.size() - created - failed)
                           + " already present, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
